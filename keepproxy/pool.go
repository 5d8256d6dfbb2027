package keepproxy

import (
	"math/bits"
	"runtime/debug"
	"sync"
	"time"

	"github.com/keepproject/keep/locator"
)

// Buffer size classes: powers of two from minBuffer to a whole block.
const (
	minBufferShift = 16 // 64 KiB
	minBuffer      = 1 << minBufferShift
	numClasses     = 26 - minBufferShift + 1 // 64 KiB ... 64 MiB
)

// classOf returns the index of the smallest size class holding n bytes,
// 0 < n <= locator.MaxBlockSize.
func classOf(n int) int {
	if n <= minBuffer {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufferShift
}

// classSize returns the capacity of buffers of class i.
func classSize(i int) int { return minBuffer << i }

// idleBuf is a buffer waiting in the pool, and when it was returned.
type idleBuf struct {
	b     []byte
	since time.Time
}

// bufPool hands out block buffers in power-of-two size classes and never
// holds more than limit bytes of them at once, in use and idle together:
// that is the proxy's memory bound. Buffers are allocated only when
// asked for; a returned buffer is kept for reuse and dropped once it has
// been idle for idleTime, after which release returns the memory to the
// operating system (without that, an idle proxy would never run the
// garbage collector and would keep its peak for ever).
type bufPool struct {
	limit    int64
	idleTime time.Duration
	now      func() time.Time
	release  func()

	mu    sync.Mutex // guards the fields below
	held  int64      // bytes of buffers in use or idle
	inUse int64
	idle  [numClasses][]idleBuf // each oldest first
	timer *time.Timer           // pending sweep, if any
	done  bool                  // closed: keep nothing idle
}

// newBufPool returns a pool holding at most limit bytes of buffers, which
// drops buffers idle for idleTime.
func newBufPool(limit int64, idleTime time.Duration) *bufPool {
	return &bufPool{limit: limit, idleTime: idleTime, now: time.Now, release: debug.FreeOSMemory}
}

// get returns a buffer of length n (0 < n <= locator.MaxBlockSize) whose
// capacity is n's size class, or nil when that would take the pool over
// its limit. Idle buffers of other classes are dropped to make room.
func (p *bufPool) get(n int) []byte {
	if n <= 0 || n > locator.MaxBlockSize {
		return nil
	}
	c := classOf(n)
	size := int64(classSize(c))
	p.mu.Lock()
	if q := p.idle[c]; len(q) > 0 {
		b := q[len(q)-1].b
		p.idle[c] = q[:len(q)-1]
		p.inUse += size
		p.mu.Unlock()
		return b[:n]
	}
	if p.inUse+size > p.limit {
		p.mu.Unlock()
		return nil
	}
	// Room for the new buffer: drop idle ones, least recently returned
	// first (the whole-block buffer a body just finished with is the
	// one the next body will want).
	for p.held+size > p.limit {
		oldest := -1
		for i := range p.idle {
			if len(p.idle[i]) > 0 && (oldest < 0 || p.idle[i][0].since.Before(p.idle[oldest][0].since)) {
				oldest = i
			}
		}
		p.idle[oldest][0] = idleBuf{}
		p.idle[oldest] = p.idle[oldest][1:]
		p.held -= int64(classSize(oldest))
	}
	p.held += size
	p.inUse += size
	p.mu.Unlock()
	// Allocated outside the lock: zeroing 64 MiB takes milliseconds.
	return make([]byte, n, size)
}

// put returns a buffer from get to the pool.
func (p *bufPool) put(b []byte) {
	if b == nil {
		return
	}
	size := int64(cap(b))
	c := classOf(cap(b))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inUse -= size
	if p.done || classSize(c) != cap(b) {
		p.held -= size
		return
	}
	p.idle[c] = append(p.idle[c], idleBuf{b: b[:0], since: p.now()})
	if p.timer == nil {
		p.timer = time.AfterFunc(p.idleTime, p.sweepLater)
	}
}

// sweepLater runs from the pool's timer: it sweeps and, while buffers
// remain idle, sets the timer for the next of them to expire.
func (p *bufPool) sweepLater() {
	p.sweep()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	if next, ok := p.nextExpiry(); ok && !p.done {
		p.timer = time.AfterFunc(max(next, time.Millisecond), p.sweepLater)
	}
}

// nextExpiry reports how long until the oldest idle buffer has been idle
// for idleTime, if there is one. p.mu must be held.
func (p *bufPool) nextExpiry() (next time.Duration, ok bool) {
	now := p.now()
	for i := range p.idle {
		if len(p.idle[i]) == 0 {
			continue
		}
		left := p.idleTime - now.Sub(p.idle[i][0].since)
		if !ok || left < next {
			next, ok = left, true
		}
	}
	return next, ok
}

// sweep drops the buffers idle for idleTime or longer and, if it dropped
// any, releases their memory.
func (p *bufPool) sweep() {
	p.mu.Lock()
	now := p.now()
	var dropped int64
	for i := range p.idle {
		q := p.idle[i]
		k := 0
		for k < len(q) && now.Sub(q[k].since) >= p.idleTime {
			q[k] = idleBuf{}
			k++
		}
		p.idle[i] = q[k:]
		dropped += int64(k) * int64(classSize(i))
	}
	p.held -= dropped
	p.mu.Unlock()
	if dropped > 0 {
		p.release()
	}
}

// close drops every idle buffer and keeps none from now on.
func (p *bufPool) close() {
	p.mu.Lock()
	p.done = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	for i := range p.idle {
		p.held -= int64(len(p.idle[i])) * int64(classSize(i))
		p.idle[i] = nil
	}
	p.mu.Unlock()
}

// usage reports the bytes of buffers held (in use and idle) and idle.
func (p *bufPool) usage() (held, idle int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held, p.held - p.inUse
}
