package keepfs

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// fetchFunc reads block i into buf (if large enough) and returns it,
// verified.
type fetchFunc func(ctx context.Context, i uint32, buf []byte) ([]byte, error)

// blockCache holds blocks in memory, least recently used evicted first,
// up to max bytes of blocks no reader is copying from. Readers of a
// block that is being fetched wait for that one fetch. Fetches run with
// the cache's context, not a reader's, since they are shared; they end
// when it does.
type blockCache struct {
	max       int64
	readahead int // most prefetches at once
	fetch     fetchFunc
	stored    func(i uint32, data []byte) // called after a fetch, the entry pinned
	ctx       context.Context
	wg        sync.WaitGroup // fetches running

	mu         sync.Mutex // protects the fields below and the entries' pins and elem
	used       int64      // bytes of the entries in the map
	entries    map[uint32]*entry
	lru        list.List // fetched entries, most recently used at the front
	prefetches int       // prefetches running
	ahead      int64     // bytes of prefetched blocks no reader has asked for yet
	spare      []byte    // the buffer of the last evicted entry, for the next fetch
	now        func() time.Time
}

// entry is one block in the cache.
type entry struct {
	block    uint32
	size     int64
	prefetch bool
	unread   bool          // prefetched, not yet asked for: not evicted, counted in ahead
	done     chan struct{} // closed when data or err is set
	data     []byte
	err      error
	pins     int           // readers copying from data: not evicted meanwhile
	elem     *list.Element // in lru once fetched
	failedAt time.Time     // when the fetch failed
	doneAt   time.Time     // when the fetch ended
}

// failTTL is how long a failed fetch's error is given to readers
// before the block is asked for again.
const failTTL = 5 * time.Second

// failed reports whether e's fetch failed long enough before now that
// it is to be tried again. c.mu is held.
func (e *entry) failed(now time.Time) bool {
	return !e.failedAt.IsZero() && now.Sub(e.failedAt) > failTTL
}

func newBlockCache(ctx context.Context, max int64, readahead int, fetch fetchFunc, stored func(uint32, []byte)) *blockCache {
	return &blockCache{max: max, readahead: readahead, fetch: fetch, stored: stored, ctx: ctx, entries: map[uint32]*entry{}, now: time.Now}
}

// errInterrupted is get's error when the reader gave up (the kernel
// passed on a signal) or the mount is ending.
var errInterrupted = errors.New("interrupted")

// get returns block i (of the given size), fetched if need be, pinned:
// the caller must release it once done with its data. A close of
// cancel ends the wait.
func (c *blockCache) get(cancel <-chan struct{}, i uint32, size int64) (*entry, error) {
	c.mu.Lock()
	e := c.entries[i]
	if e == nil || e.failed(c.now()) {
		e = c.start(i, size, false)
	}
	e.pins++
	if e.unread {
		e.unread = false
		c.ahead -= e.size
	}
	if e.elem != nil {
		c.lru.MoveToFront(e.elem)
	}
	c.mu.Unlock()
	select {
	case <-e.done:
	case <-cancel:
		c.release(e)
		return nil, errInterrupted
	case <-c.ctx.Done():
		c.release(e)
		return nil, errInterrupted
	}
	if e.err != nil {
		c.release(e)
		return nil, e.err
	}
	return e, nil
}

// prefetch starts fetching block i unless it is cached or being
// fetched, readahead prefetches are running already, or the blocks
// prefetched and not yet read would leave less than a block's room (of
// this block's size) in the cache: they are not evicted (else a small cache would drop what
// it fetched ahead before the reader gets there, and fetch it again).
func (c *blockCache) prefetch(i uint32, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[i]; e != nil && !e.failed(c.now()) || c.prefetches >= c.readahead || c.ctx.Err() != nil {
		return
	}
	if c.ahead+size > c.max-size && !c.forgetStale(size) {
		return
	}
	c.prefetches++
	e := c.start(i, size, true)
	e.unread = true
	c.ahead += size
}

// staleAhead is how long a prefetched block nobody has read is kept
// from eviction: a reader that stopped reading does not hold the room.
const staleAhead = 30 * time.Second

// forgetStale makes evictable the prefetched blocks unread for
// staleAhead, and reports whether that leaves room to prefetch a block
// of the given size. c.mu is held.
func (c *blockCache) forgetStale(size int64) bool {
	now := c.now()
	for el := c.lru.Back(); el != nil; el = el.Prev() {
		if e := el.Value.(*entry); e.unread && now.Sub(e.doneAt) > staleAhead {
			e.unread = false
			c.ahead -= e.size
		}
	}
	return c.ahead+size <= c.max-size
}

// release unpins e.
func (c *blockCache) release(e *entry) {
	c.mu.Lock()
	e.pins--
	c.evict()
	c.mu.Unlock()
}

// start adds an entry for block i and starts its fetch. c.mu is held.
func (c *blockCache) start(i uint32, size int64, prefetch bool) *entry {
	e := &entry{block: i, size: size, prefetch: prefetch, done: make(chan struct{})}
	c.entries[i] = e
	c.used += size
	c.evict()
	var buf []byte
	if int64(cap(c.spare)) >= size {
		buf, c.spare = c.spare, nil
	}
	c.wg.Add(1)
	go c.run(e, buf)
	return e
}

// run fetches e's block and publishes it.
func (c *blockCache) run(e *entry, buf []byte) {
	defer c.wg.Done()
	data, err := c.fetch(c.ctx, e.block, buf)
	c.mu.Lock()
	e.data, e.err = data, err
	e.doneAt = c.now()
	if e.prefetch {
		c.prefetches--
	}
	if err != nil {
		// Kept a moment, so that the kernel's retry of the same read
		// gets the same answer without another round of requests.
		e.failedAt = c.now()
		c.used -= e.size
		if e.unread {
			e.unread = false
			c.ahead -= e.size
		}
	} else {
		e.elem = c.lru.PushFront(e)
		e.pins++ // for stored
	}
	c.mu.Unlock()
	close(e.done)
	if err == nil {
		if c.stored != nil {
			c.stored(e.block, data)
		}
		c.release(e)
	}
}

// evict drops least recently used unpinned blocks until at most max
// bytes are held, or only pinned and in-flight ones are left. c.mu is
// held.
func (c *blockCache) evict() {
	for el := c.lru.Back(); el != nil && c.used > c.max; {
		e := el.Value.(*entry)
		prev := el.Prev()
		if e.pins == 0 && !e.unread {
			c.lru.Remove(el)
			e.elem = nil
			delete(c.entries, e.block)
			c.used -= e.size
			c.spare = e.data[:0]
			e.data = nil
		}
		el = prev
	}
}

// usage returns the bytes of blocks held and being fetched.
func (c *blockCache) usage() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// wait waits for the fetches to end; the cache's context must be done.
func (c *blockCache) wait() { c.wg.Wait() }
