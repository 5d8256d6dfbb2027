package keepproxy

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/locator"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestPool returns a pool on a fake clock whose sweeps count releases;
// its idle time is an hour, so its real timer never fires in a test.
func newTestPool(t *testing.T, limit int64) (*bufPool, *fakeClock, *int) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	released := new(int)
	p := newBufPool(limit, time.Hour)
	p.now, p.release = clock.now, func() { *released++ }
	t.Cleanup(p.close)
	return p, clock, released
}

func TestClassOf(t *testing.T) {
	for _, tt := range []struct{ n, size int }{
		{1, 64 << 10}, {64 << 10, 64 << 10}, {64<<10 + 1, 128 << 10},
		{3<<20 + 5, 4 << 20}, {locator.MaxBlockSize - 1, locator.MaxBlockSize}, {locator.MaxBlockSize, locator.MaxBlockSize},
	} {
		if got := classSize(classOf(tt.n)); got != tt.size {
			t.Errorf("class of %d bytes holds %d, want %d", tt.n, got, tt.size)
		}
	}
	if c := classOf(locator.MaxBlockSize); c != numClasses-1 {
		t.Errorf("a whole block is class %d, want the last, %d", c, numClasses-1)
	}
}

// TestPoolSizedByLength: a buffer is as long as asked and only as large
// as its size class, never a whole block for a small request.
func TestPoolSizedByLength(t *testing.T) {
	p, clock, _ := newTestPool(t, 64<<20)
	for _, n := range []int{1, 1000, 64 << 10, 100 << 10, 1<<20 + 1} {
		b := p.get(n)
		if len(b) != n || cap(b) != classSize(classOf(n)) {
			t.Errorf("get(%d): len %d cap %d, want len %d cap %d", n, len(b), cap(b), n, classSize(classOf(n)))
		}
		if held, _ := p.usage(); held != int64(cap(b)) {
			t.Errorf("get(%d): pool holds %d bytes, want %d", n, held, cap(b))
		}
		p.put(b)
		clock.advance(2 * time.Hour)
		p.sweep()
	}
	if p.get(0) != nil || p.get(locator.MaxBlockSize+1) != nil {
		t.Error("get accepted a size outside 1 to 64 MiB")
	}
}

// TestPoolBound: the pool never hands out more than its limit, reuses a
// returned buffer, and drops idle buffers of other classes to make room.
func TestPoolBound(t *testing.T) {
	const mib = 1 << 20
	p, _, _ := newTestPool(t, 4*mib)
	var bufs [][]byte
	for range 4 {
		b := p.get(mib)
		if b == nil {
			t.Fatal("get refused a buffer within the limit")
		}
		bufs = append(bufs, b)
	}
	if p.get(1) != nil {
		t.Fatal("get handed out a buffer beyond the limit")
	}
	p.put(bufs[0])
	again := p.get(mib)
	if &again[0] != &bufs[0][0] {
		t.Error("a returned buffer was not reused")
	}
	p.put(again)
	// The idle 1 MiB buffer is dropped to make room for two of 512 KiB.
	if a, b := p.get(mib/2), p.get(mib/2); a == nil || b == nil {
		t.Fatal("idle buffer not dropped to make room")
	}
	if held, idle := p.usage(); held != 4*mib || idle != 0 {
		t.Errorf("holds %d bytes, %d idle; want %d, 0", held, idle, 4*mib)
	}
}

// TestPoolConcurrentBound: under concurrent use of random sizes, what the
// pool holds never exceeds its limit.
func TestPoolConcurrentBound(t *testing.T) {
	const limit = 3 << 20
	p, _, _ := newTestPool(t, limit)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				b := p.get(1 + r.IntN(1<<20))
				if held, _ := p.usage(); held > limit {
					t.Errorf("pool holds %d bytes, limit %d", held, limit)
				}
				p.put(b)
			}
		})
	}
	wg.Wait()
	if held, idle := p.usage(); held != idle {
		t.Errorf("after all returned: %d held, %d idle", held, idle)
	}
}

// TestPoolIdleDrop: buffers idle for the idle time are dropped and their
// memory released; younger ones stay.
func TestPoolIdleDrop(t *testing.T) {
	p, clock, released := newTestPool(t, 8<<20)
	a, b := p.get(1<<20), p.get(1<<20)
	p.put(a)
	clock.advance(30 * time.Minute)
	p.put(b)
	clock.advance(30*time.Minute - time.Nanosecond)
	p.sweep()
	if held, _ := p.usage(); held != 2<<20 || *released != 0 {
		t.Fatalf("before the idle time: holds %d, %d releases; want %d, 0", held, *released, 2<<20)
	}
	clock.advance(time.Nanosecond)
	p.sweep()
	if held, _ := p.usage(); held != 1<<20 || *released != 1 {
		t.Fatalf("after the first idle time: holds %d, %d releases; want %d, 1", held, *released, 1<<20)
	}
	if next, ok := p.nextExpiry(); !ok || next != 30*time.Minute {
		t.Errorf("next expiry %v %v, want 30m", next, ok)
	}
	clock.advance(time.Hour)
	p.sweep()
	if held, _ := p.usage(); held != 0 || *released != 2 {
		t.Errorf("after both idle times: holds %d, %d releases; want 0, 2", held, *released)
	}
}

// TestPoolTimerDrops: without any further use, the pool's own timer drops
// idle buffers.
func TestPoolTimerDrops(t *testing.T) {
	p := newBufPool(1<<20, time.Millisecond)
	t.Cleanup(p.close)
	released := make(chan struct{}, 1)
	p.release = func() { released <- struct{}{} }
	p.put(p.get(1000))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	select {
	case <-released:
	case <-ctx.Done():
		t.Fatal("idle buffer never released")
	}
	if held, _ := p.usage(); held != 0 {
		t.Errorf("holds %d bytes after release", held)
	}
}
