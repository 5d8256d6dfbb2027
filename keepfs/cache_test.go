package keepfs

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeFetches counts fetches of 10-byte blocks and holds each until
// release is closed (if it is not nil).
type fakeFetches struct {
	calls   atomic.Int32
	release chan struct{}
}

func (f *fakeFetches) fetch(ctx context.Context, i uint32, buf []byte) ([]byte, error) {
	f.calls.Add(1)
	if f.release != nil {
		<-f.release
	}
	return make([]byte, 10), nil
}

func newTestCache(t *testing.T, max int64, readahead int, f *fakeFetches) *blockCache {
	ctx, cancel := context.WithCancel(context.Background())
	c := newBlockCache(ctx, max, readahead, f.fetch, nil)
	t.Cleanup(func() { cancel(); c.wait() })
	return c
}

func TestCacheSharesFetches(t *testing.T) {
	f := &fakeFetches{release: make(chan struct{})}
	c := newTestCache(t, 100, 0, f)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			e, err := c.get(nil, 7, 10)
			if err != nil {
				t.Error(err)
				return
			}
			c.release(e)
		})
	}
	// Until all five wait on the one fetch.
	for {
		c.mu.Lock()
		e := c.entries[7]
		n := 0
		if e != nil {
			n = e.pins
		}
		c.mu.Unlock()
		if n == 5 {
			break
		}
		runtime.Gosched()
	}
	close(f.release)
	wg.Wait()
	if n := f.calls.Load(); n != 1 {
		t.Errorf("%d fetches for five readers of one block, want 1", n)
	}
}

func TestCacheEvictsToBound(t *testing.T) {
	f := &fakeFetches{}
	c := newTestCache(t, 30, 0, f)
	for i := range uint32(10) {
		e, err := c.get(nil, i, 10)
		if err != nil {
			t.Fatal(err)
		}
		c.release(e)
		if u := c.usage(); u > 30 {
			t.Fatalf("after block %d the cache holds %d bytes, more than 30", i, u)
		}
	}
	// Blocks 7, 8, 9 are cached; 0 is fetched again.
	before := f.calls.Load()
	for _, i := range []uint32{9, 8, 7, 0} {
		e, _ := c.get(nil, i, 10)
		c.release(e)
	}
	if n := f.calls.Load() - before; n != 1 {
		t.Errorf("%d fetches for three cached blocks and one evicted, want 1", n)
	}
}

func TestCacheBoundsReadahead(t *testing.T) {
	f := &fakeFetches{release: make(chan struct{})}
	c := newTestCache(t, 40, 10, f)
	now := time.Unix(0, 0)
	c.now = func() time.Time { return now }
	for i := range uint32(10) {
		c.prefetch(i, 10)
	}
	// Unread prefetches may fill the cache but for one block's room.
	c.mu.Lock()
	started := len(c.entries)
	c.mu.Unlock()
	if started != 3 {
		t.Errorf("%d prefetches in a cache of 4 blocks, want 3", started)
	}
	close(f.release)
	c.wait()
	// None of them is evicted for later blocks...
	e, _ := c.get(nil, 20, 10)
	c.release(e)
	c.prefetch(21, 10)
	c.wait()
	if n := f.calls.Load(); n != 4 {
		t.Errorf("%d fetches, want 4: an unread prefetch was evicted or a fourth started", n)
	}
	// ...until read, or left unread too long.
	e, _ = c.get(nil, 0, 10)
	c.release(e)
	c.prefetch(22, 10)
	c.wait()
	now = now.Add(staleAhead + time.Second)
	c.prefetch(23, 10)
	c.wait()
	if n := f.calls.Load(); n != 6 {
		t.Errorf("%d fetches, want 6", n)
	}
}
