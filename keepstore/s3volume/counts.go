package s3volume

import (
	"sync"

	"github.com/keepproject/keep/keepstore"
)

// counts are what Usage reports, kept without asking the store: set by a
// listing, then moved by this volume's own changes. They are kept by the
// first hex digit of the hash, so that an index of one digit's blocks
// (keepstore reads several volumes' indexes in 16 such shards) corrects
// that digit's counts, as a full index corrects them all.
type counts struct {
	mu       sync.Mutex // protects the fields below
	digits   [16]digitCounts
	reserved int64 // bytes claimed by writes in flight
}

type digitCounts struct {
	used, blocks int64
	// begun counts the changes begun; pending those not yet applied. A
	// listing may replace the counts only if no change was pending when
	// it started nor began while it ran: such a change may or may not
	// be in the listing.
	begun   uint64
	pending int
}

// digit returns the value of the hash's first hex digit.
func digit(hash string) int {
	if c := hash[0]; c >= 'a' {
		return int(c-'a') + 10
	}
	return int(hash[0] - '0')
}

// begin notes that a change to the counts of hash is under way; end
// applies it, adding bytes and blocks (which may be zero or negative).
func (c *counts) begin(hash string) {
	c.mu.Lock()
	d := &c.digits[digit(hash)]
	d.begun++
	d.pending++
	c.mu.Unlock()
}

func (c *counts) end(hash string, bytes, blocks int64) {
	c.mu.Lock()
	d := &c.digits[digit(hash)]
	d.pending--
	d.used += bytes
	d.blocks += blocks
	c.mu.Unlock()
}

// totalsLocked returns the bytes and blocks stored; c.mu is held.
func (c *counts) totalsLocked() (used, blocks int64) {
	for _, d := range c.digits {
		used += d.used
		blocks += d.blocks
	}
	return used, blocks
}

// reserve claims room for size bytes under capacity c (none if 0): a
// block that could never fit is ErrFull, one that fits but for other
// writes in flight ErrBusy.
func (c *counts) reserve(capacity, size int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	used, _ := c.totalsLocked()
	if err := keepstore.CheckRoom(capacity, used, c.reserved, 0, size); err != nil {
		return err
	}
	c.reserved += size
	return nil
}

func (c *counts) release(size int64) {
	c.mu.Lock()
	c.reserved -= size
	c.mu.Unlock()
}

func (c *counts) usage(capacity int64) keepstore.Usage {
	c.mu.Lock()
	defer c.mu.Unlock()
	used, blocks := c.totalsLocked()
	return keepstore.Usage{UsedBytes: used, Blocks: blocks, CapacityBytes: capacity, ReservedBytes: c.reserved, FreeBytes: -1}
}

// recount gathers the counts of a listing of whole digits.
type recount struct {
	c      *counts
	digits []int // the digits the listing covers
	begun  [16]uint64
	quiet  [16]bool
	used   [16]int64
	blocks [16]int64
}

// recount starts the recount of a listing of the blocks whose hash
// starts with prefix: all digits for "", one for a digit, none for a
// longer prefix.
func (c *counts) recount(prefix string) *recount {
	r := &recount{c: c}
	switch len(prefix) {
	case 0:
		for i := range 16 {
			r.digits = append(r.digits, i)
		}
	case 1:
		r.digits = []int{digit(prefix)}
	}
	c.mu.Lock()
	for _, i := range r.digits {
		r.begun[i], r.quiet[i] = c.digits[i].begun, c.digits[i].pending == 0
	}
	c.mu.Unlock()
	return r
}

// add counts a block listed.
func (r *recount) add(hash string, size int64) {
	i := digit(hash)
	r.used[i] += size
	r.blocks[i]++
}

// settle replaces the counts of the digits no change overlapped with
// those of the listing, which must have been complete.
func (r *recount) settle() {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	for _, i := range r.digits {
		if d := &r.c.digits[i]; r.quiet[i] && d.begun == r.begun[i] {
			d.used, d.blocks = r.used[i], r.blocks[i]
		}
	}
}
