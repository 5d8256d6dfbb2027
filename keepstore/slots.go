package keepstore

import (
	"sync"
	"time"
)

// defaultEvictAfter is how far an upload must have fallen behind the
// minimum rate before a new PUT may take its write slot. It keeps an
// honest upload from being evicted while its first bytes cross the
// network (an Expect: 100-continue round trip).
const defaultEvictAfter = time.Second

// writeSlots limits the uploads served at once. When every slot is
// taken, a new upload takes the slot of the one furthest behind the
// minimum rate, if any is at least evictAfter behind: a client trickling
// its body cannot keep an honest one out. The evicted upload's handler
// fails its body read at once and exits; it no longer counts against
// the limit.
type writeSlots struct {
	max        int
	evictAfter time.Duration

	mu   sync.Mutex // protects held
	held map[*upload]struct{}
}

func newWriteSlots(n int, evictAfter time.Duration) *writeSlots {
	return &writeSlots{max: n, evictAfter: evictAfter, held: make(map[*upload]struct{}, n)}
}

// acquire gives u a slot, evicting a slow upload if need be. It reports
// false when every slot is held by an upload keeping to the rate (or not
// yet reading its body).
func (ws *writeSlots) acquire(u *upload) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.held) < ws.max {
		ws.held[u] = struct{}{}
		return true
	}
	// At most max uploads to look at, and only when the server is full.
	now := time.Now()
	var victim *upload
	var worst time.Duration
	for v := range ws.held {
		if d, ok := v.behind(now); ok && d >= ws.evictAfter && (victim == nil || d > worst) {
			victim, worst = v, d
		}
	}
	if victim == nil || !victim.evict() {
		return false
	}
	// Evicted while ws.mu is held, so before its handler could release
	// its slot: the handler is still running, and the deadline it was
	// given cannot fall on a later request of the same connection.
	delete(ws.held, victim)
	ws.held[u] = struct{}{}
	return true
}

// release frees u's slot, if it still has one.
func (ws *writeSlots) release(u *upload) {
	ws.mu.Lock()
	delete(ws.held, u)
	ws.mu.Unlock()
}

// inUse returns the number of slots held.
func (ws *writeSlots) inUse() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.held)
}
