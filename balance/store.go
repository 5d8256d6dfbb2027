package balance

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"slices"
	"sort"
	"unsafe"

	"github.com/keepproject/keep/internal/offheap"

	"github.com/keepproject/keep/locator"
)

// hash is a block's MD5: the 16 bytes its locator's 32 hex digits spell.
type hash [16]byte

// parseHash reads 32 lowercase hex digits.
func parseHash(s []byte) (hash, bool) {
	var h hash
	if len(s) != 2*len(h) {
		return h, false
	}
	for i := range h {
		hi, lo := unhex(s[2*i]), unhex(s[2*i+1])
		if hi > 15 || lo > 15 {
			return h, false
		}
		h[i] = hi<<4 | lo
	}
	return h, true
}

func unhex(c byte) byte { return unhexTable[c] }

// unhexTable maps '0'-'9' and 'a'-'f' to their values, and every other
// byte to 255.
var unhexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 255
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// String returns the 32 hex digits.
func (h hash) String() string { return hex.EncodeToString(h[:]) }

// appendHex appends the 32 hex digits to b.
func (h hash) appendHex(b []byte) []byte { return hex.AppendEncode(b, h[:]) }

// chunkBits sizes the chunks of a chunked: 2^16 items. Chunks never
// move, so a table growing to 10^8 items never holds two copies of
// itself, as a growing slice would.
const chunkBits = 16

// chunked is a growable array in fixed chunks, mapped outside the Go
// heap (package offheap): the garbage collector neither scans the
// inventory nor lets the heap grow to twice its size between
// collections.
type chunked[T any] struct {
	chunks [][]T
	n      int
}

// add appends v, mapping a new chunk if need be, whose memory mem
// frees. The first chunk is on the heap and grows as it fills, so that a
// small inventory maps nothing.
func (c *chunked[T]) add(mem *mapped, v T) (uint32, error) {
	i := c.n
	switch {
	case len(c.chunks) == 0:
		c.chunks = append(c.chunks, make([]T, 0, 64))
	case len(c.chunks[len(c.chunks)-1]) == 1<<chunkBits:
		chunk, err := offheapMake[T](mem, 1<<chunkBits)
		if err != nil {
			return 0, err
		}
		c.chunks = append(c.chunks, chunk[:0])
	}
	last := &c.chunks[len(c.chunks)-1]
	*last = append(*last, v)
	c.n++
	return uint32(i), nil
}

func (c *chunked[T]) at(i uint32) *T { return &c.chunks[i>>chunkBits][i&(1<<chunkBits-1)] }

// mapped is the memory a store (or plan) mapped, which it gives back
// once its owner is unreachable (runtime.AddCleanup), or when it is
// replaced. Only its owner's methods use it, one at a time, and the
// cleanup only once they cannot: it needs no lock.
type mapped struct {
	frees map[*byte]func()
}

// offheapMake maps n Ts, to be freed with mem.
func offheapMake[T any](mem *mapped, n int) ([]T, error) {
	s, free, err := offheap.Make[T](n)
	if err != nil {
		return nil, fmt.Errorf("balance: out of memory for the inventory: %w", err)
	}
	mem.frees[key(s)] = free
	return s, nil
}

// release gives back the memory of s, mapped by offheapMake.
func release[T any](mem *mapped, s []T) {
	if free, ok := mem.frees[key(s)]; ok {
		delete(mem.frees, key(s))
		free()
	}
}

func key[T any](s []T) *byte { return (*byte)(unsafe.Pointer(unsafe.SliceData(s))) }

// releaseAll gives back all of mem.
func (mem *mapped) releaseAll() {
	for k, free := range mem.frees {
		free()
		delete(mem.frees, k)
	}
}

// maxVolumes bounds the volumes of an inventory: a copy names its volume
// in 15 bits.
const maxVolumes = 1 << 15

// mixedBit marks a copy whose indexes gave different mtimes (the volume
// was listed twice): it changed while read, so it is kept.
const mixedBit = 1 << 15

// copyRec is one volume's copy of a block.
type copyRec struct {
	mtime [2]uint32 // UnixNano, in halves to keep records 4-aligned
	vol   uint16    // volume index, with mixedBit
}

func (c copyRec) held() held {
	return held{vol: int(c.vol &^ mixedBit), mtime: int64(uint64(c.mtime[0])<<32 | uint64(c.mtime[1])), mixed: c.vol&mixedBit != 0}
}

func newCopyRec(vol int, mtime int64) copyRec {
	return copyRec{mtime: [2]uint32{uint32(uint64(mtime) >> 32), uint32(mtime)}, vol: uint16(vol)}
}

// inlineCopies are held in a block's record; more go to the extra list.
const inlineCopies = 2

// blockRec is one block: 48 bytes, whatever its copies. Its inline
// copies' mtimes and volumes are in arrays of their own, which leaves no
// padding (a [2]copyRec would take 24 bytes for 20).
type blockRec struct {
	hash   hash
	mtimes [inlineCopies][2]uint32 // of the inline copies (see copyRec)
	more   uint32                  // 1 + the index of its first extra copy; 0 for none
	size   uint32                  // from the live set, else the first index listing it
	vols   [inlineCopies]uint16    // of the inline copies, with mixedBit
	wanted uint8                   // 1 + replicas wanted, at most 255; 0: not referenced
	n      uint8                   // copies held inline
}

// inline returns inline copy i.
func (b *blockRec) inline(i int) copyRec { return copyRec{mtime: b.mtimes[i], vol: b.vols[i]} }

// setInline sets inline copy i.
func (b *blockRec) setInline(i int, c copyRec) { b.mtimes[i], b.vols[i] = c.mtime, c.vol }

// extraRec is a copy beyond the inline ones, in a list per block.
type extraRec struct {
	c    copyRec
	next uint32 // 1 + the index of the next; 0 for none
}

// maxWanted is the most replicas a block can be asked for.
const maxWanted = 254

// store holds an inventory's blocks compactly: a block is a 48-byte
// record in chunks, found by hash through an open-addressing table of
// record numbers. About 56 bytes a block with two copies, against some
// 1,100 for maps of strings and slices.
//
// A table slot holds 1 + the record number in its low bits (as many as
// the table's size needs) and, above them, a tag of the block's hash,
// so that a search passes over most other blocks' slots without reading
// their records.
type store struct {
	seed   maphash.Seed
	table  []uint32 // 0: empty; else tag<<idBits | (1 + record number). Its length is a power of two.
	idBits uint     // log2(len(table))
	blocks chunked[blockRec]
	extra  chunked[extraRec]
	mem    *mapped
	wanted int // blocks the live set references
	stored int // blocks with a copy
	copies int
	sink   byte // see touch
}

func newStore() *store {
	const bits = 10
	s := &store{seed: maphash.MakeSeed(), table: make([]uint32, 1<<bits), idBits: bits, mem: &mapped{frees: map[*byte]func(){}}}
	runtime.AddCleanup(s, (*mapped).releaseAll, s.mem)
	return s
}

// len returns the number of blocks.
func (s *store) len() int { return s.blocks.n }

// slotOf returns where a search for h starts, and the tag its slots
// carry.
func (s *store) slotOf(h *hash) (int, uint32) {
	x := maphash.Bytes(s.seed, h[:])
	tag := uint32(x>>32) &^ (1<<s.idBits - 1) // 32-idBits bits, above the id
	return int(x) & (len(s.table) - 1), tag
}

// find returns the record number of h, or where in the table to put it
// and the tag to put there.
func (s *store) find(h hash) (id uint32, slot int, tag uint32, ok bool) {
	mask := len(s.table) - 1
	idMask := uint32(1)<<s.idBits - 1
	i, tag := s.slotOf(&h)
	for {
		v := s.table[i]
		if v == 0 {
			return 0, i, tag, false
		}
		if v&^idMask == tag && s.blocks.at(v&idMask-1).hash == h {
			return v&idMask - 1, i, tag, true
		}
		i = (i + 1) & mask
	}
}

// lookup returns the record number of h.
func (s *store) lookup(h hash) (uint32, bool) {
	id, _, _, ok := s.find(h)
	return id, ok
}

// block returns h's record number, adding a record if need be.
func (s *store) block(h hash) (uint32, error) {
	id, slot, tag, ok := s.find(h)
	if ok {
		return id, nil
	}
	id, err := s.blocks.add(s.mem, blockRec{hash: h})
	if err != nil {
		return 0, err
	}
	s.table[slot] = tag | (id + 1)
	if 4*s.blocks.n > 3*len(s.table) {
		return id, s.grow()
	}
	return id, nil
}

// grow doubles the table.
func (s *store) grow() error {
	table, err := offheapMake[uint32](s.mem, 2*len(s.table))
	if err != nil {
		return err
	}
	release(s.mem, s.table)
	s.table = table
	s.idBits++
	mask := len(s.table) - 1
	for id := range uint32(s.blocks.n) {
		i, tag := s.slotOf(&s.blocks.at(id).hash)
		for s.table[i] != 0 {
			i = (i + 1) & mask
		}
		s.table[i] = tag | (id + 1)
	}
	return nil
}

// want records that the live set references h, wanting replicas
// copies: the most any reference asks.
func (s *store) want(h hash, size int64, replicas int) error {
	if err := checkSize(h, size); err != nil {
		return err
	}
	id, err := s.block(h)
	if err != nil {
		return err
	}
	b := s.blocks.at(id)
	if b.wanted == 0 {
		s.wanted++
		b.size = uint32(size)
	}
	b.wanted = uint8(max(int(b.wanted), min(replicas, maxWanted)+1))
	return nil
}

var errTooManyVolumes = fmt.Errorf("more than %d volumes", maxVolumes)

// addCopy records a copy of h on volume vol. A volume holds one copy of
// a block: listed again, the newest mtime counts and a different one
// marks the copy mixed.
func (s *store) addCopy(h hash, size int64, vol int, mtime int64) error {
	if vol < 0 || vol >= maxVolumes {
		return errTooManyVolumes
	}
	if err := checkSize(h, size); err != nil {
		return err
	}
	id, err := s.block(h)
	if err != nil {
		return err
	}
	b := s.blocks.at(id)
	if b.n == 0 && b.more == 0 && b.wanted == 0 {
		b.size = uint32(size)
	}
	if s.relisted(b, vol, mtime) {
		return nil
	}
	if b.n == 0 {
		s.stored++
	}
	s.copies++
	c := newCopyRec(vol, mtime)
	if int(b.n) < inlineCopies {
		b.setInline(int(b.n), c)
		b.n++
		return nil
	}
	e, err := s.extra.add(s.mem, extraRec{c: c, next: b.more})
	if err != nil {
		return err
	}
	b.more = e + 1
	return nil
}

// relisted reports whether b has a copy on vol already, and if so
// counts the newest mtime, marking the copy mixed when they differ.
func (s *store) relisted(b *blockRec, vol int, mtime int64) bool {
	merge := func(c copyRec) (copyRec, bool) {
		if int(c.vol&^mixedBit) != vol {
			return c, false
		}
		if prev := c.held(); prev.mtime != mtime {
			c = newCopyRec(vol, max(prev.mtime, mtime))
			c.vol |= mixedBit
		}
		return c, true
	}
	for i := range int(b.n) {
		if c, ok := merge(b.inline(i)); ok {
			b.setInline(i, c)
			return true
		}
	}
	for e := b.more; e != 0; e = s.extra.at(e - 1).next {
		x := s.extra.at(e - 1)
		if c, ok := merge(x.c); ok {
			x.c = c
			return true
		}
	}
	return false
}

// entry is one copy as an index lists it.
type entry struct {
	h     hash
	size  int64
	mtime int64
}

// touchGroup is how many copies addCopies looks ahead at: their slots
// and records fit in the processor's caches.
const touchGroup = 64

// addCopies adds a batch of copies on volume vol, as addCopy does. For
// each group of them it first reads the table slots and the records the
// group will need, in loads that do not depend on each other and that
// the processor overlaps, rather than one cache miss after another:
// about a quarter faster at 10M blocks.
func (s *store) addCopies(batch []entry, vol int) error {
	for len(batch) > 0 {
		group := batch[:min(touchGroup, len(batch))]
		s.sink += s.touch(group)
		for _, e := range group {
			if err := s.addCopy(e.h, e.size, vol, e.mtime); err != nil {
				return err
			}
		}
		batch = batch[len(group):]
	}
	return nil
}

// touch reads the slots where the group's hashes start, then the
// records they name, and returns a byte of them (kept in s.sink, so that
// the loads are not optimised away).
func (s *store) touch(group []entry) byte {
	var slots [touchGroup]uint32
	for i := range group {
		slot, _ := s.slotOf(&group[i].h)
		slots[i] = s.table[slot]
	}
	idMask := uint32(1)<<s.idBits - 1
	var sum byte
	for _, v := range slots[:len(group)] {
		if v != 0 {
			sum += s.blocks.at(v&idMask - 1).hash[0]
		}
	}
	return sum
}

// appendHeld appends the volumes holding block id to dst, in the order
// they were first listed.
func (s *store) appendHeld(dst []held, id uint32) []held {
	b := s.blocks.at(id)
	for i := range int(b.n) {
		dst = append(dst, b.inline(i).held())
	}
	start := len(dst)
	for e := b.more; e != 0; e = s.extra.at(e - 1).next {
		dst = append(dst, s.extra.at(e-1).c.held())
	}
	slices.Reverse(dst[start:]) // the list is newest first
	return dst
}

// sortGroups is how many passes inOrder makes over the records: each
// sorts the blocks whose hash starts with one of 16 hex digits, so that
// it holds a sixteenth of the blocks at a time.
const sortGroups = 16

// inOrder yields every record number in hash order.
func (s *store) inOrder(yield func(id uint32) bool) {
	type keyed struct {
		key uint64 // the hash's first 8 bytes
		id  uint32
	}
	var group []keyed
	n := uint32(s.blocks.n)
	for g := range sortGroups {
		group = group[:0]
		for id := range n {
			if h := &s.blocks.at(id).hash; int(h[0])*sortGroups/256 == g {
				group = append(group, keyed{beUint64(h[:8]), id})
			}
		}
		slices.SortFunc(group, func(x, y keyed) int {
			if c := cmp.Compare(x.key, y.key); c != 0 {
				return c
			}
			return bytes.Compare(s.blocks.at(x.id).hash[8:], s.blocks.at(y.id).hash[8:])
		})
		for start := 0; start < len(group); start += touchGroup {
			// Read the next records in independent loads first, which
			// the processor overlaps: in hash order they are random.
			chunk := group[start:min(start+touchGroup, len(group))]
			for _, k := range chunk {
				s.sink += s.blocks.at(k.id).n
			}
			for _, k := range chunk {
				if !yield(k.id) {
					return
				}
			}
		}
	}
}

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// errBadHash is the error for a hash that is not 32 lowercase hex digits.
var errBadHash = errors.New("not a block hash (32 lowercase hex digits)")

// sortByHash sorts n items, each naming a block (id), by its hash, with
// swap: a list's items are far fewer than the blocks.
func (s *store) sortByHash(n int, id func(int) uint32, swap func(a, b int)) {
	sort.Sort(byHash{s, n, id, swap})
}

type byHash struct {
	s    *store
	n    int
	id   func(int) uint32
	swap func(a, b int)
}

func (b byHash) Len() int { return b.n }
func (b byHash) Less(i, j int) bool {
	return bytes.Compare(b.s.blocks.at(b.id(i)).hash[:], b.s.blocks.at(b.id(j)).hash[:]) < 0
}
func (b byHash) Swap(i, j int) { b.swap(i, j) }

// checkSize refuses a size no block can have.
func checkSize(h hash, size int64) error {
	if size < 0 || size > locator.MaxBlockSize {
		return fmt.Errorf("block %s: size %d is not between 0 and %d", h, size, locator.MaxBlockSize)
	}
	return nil
}
