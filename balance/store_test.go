package balance

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// The store agrees with a map of the same blocks and copies: across
// table growth, chunks on the heap and mapped, copies inline and in the
// extra list, a volume listed twice (newest mtime, mixed when they
// differ), the most replicas any reference wants, and hash order.
func TestStore(t *testing.T) {
	type model struct {
		size   int64
		wanted int // 1 + replicas; 0: not referenced
		copies map[int]held
		order  []int // volumes in the order first listed
	}
	r := rand.New(rand.NewPCG(20, 1))
	s := newStore()
	m := map[hash]*model{}
	var all []hash
	const blocks = 3<<chunkBits + 1000 // four chunks, three of them mapped
	for len(all) < blocks {
		var h hash
		for i := range h {
			h[i] = byte(r.IntN(256))
		}
		if m[h] != nil {
			continue
		}
		m[h] = &model{size: int64(r.IntN(1 << 26)), copies: map[int]held{}}
		all = append(all, h)
	}
	for i := 0; i < 3*blocks; i++ {
		h := all[r.IntN(len(all))]
		b := m[h]
		if r.IntN(3) == 0 {
			n := r.IntN(5)
			if err := s.want(h, b.size, n); err != nil {
				t.Fatal(err)
			}
			b.wanted = max(b.wanted, n+1)
			continue
		}
		vol, mtime := r.IntN(6), int64(r.IntN(4))<<40
		if err := s.addCopy(h, b.size, vol, mtime); err != nil {
			t.Fatal(err)
		}
		c, ok := b.copies[vol]
		switch {
		case !ok:
			b.copies[vol] = held{vol: vol, mtime: mtime}
			b.order = append(b.order, vol)
		case c.mtime != mtime:
			b.copies[vol] = held{vol: vol, mtime: max(c.mtime, mtime), mixed: true}
		}
	}
	stored, copies, wanted := 0, 0, 0
	for _, h := range all {
		b := m[h]
		id, ok := s.lookup(h)
		if len(b.copies) == 0 && b.wanted == 0 {
			if ok {
				t.Fatalf("%s: in the store, never added", h)
			}
			continue
		}
		if !ok {
			t.Fatalf("%s: not found", h)
		}
		rec := s.blocks.at(id)
		if rec.hash != h || int(rec.wanted) != b.wanted || int64(rec.size) != b.size {
			t.Fatalf("%s: record %+v, want size %d wanted %d", h, rec, b.size, b.wanted)
		}
		var want []held
		for _, v := range b.order {
			want = append(want, b.copies[v])
		}
		if got := s.appendHeld(nil, id); !slices.Equal(got, want) {
			t.Fatalf("%s: held %v, want %v", h, got, want)
		}
		if len(b.copies) > 0 {
			stored++
		}
		if b.wanted > 0 {
			wanted++
		}
		copies += len(b.copies)
	}
	if s.stored != stored || s.copies != copies || s.wanted != wanted {
		t.Errorf("counts: stored %d copies %d wanted %d; want %d, %d, %d", s.stored, s.copies, s.wanted, stored, copies, wanted)
	}
	order := slices.Collect(s.inOrder)
	if len(order) != s.len() {
		t.Fatalf("sorted: %d of %d", len(order), s.len())
	}
	for i := 1; i < len(order); i++ {
		if bytes.Compare(s.blocks.at(order[i-1]).hash[:], s.blocks.at(order[i]).hash[:]) >= 0 {
			t.Fatalf("sorted: %d and %d out of order", i-1, i)
		}
	}
}

// A block's record is 48 bytes and an extra copy 16: the inventory's
// size rests on them (a [2]copyRec in the record once made it 52).
func TestRecordSizes(t *testing.T) {
	if n := unsafe.Sizeof(blockRec{}); n != 48 {
		t.Errorf("blockRec is %d bytes, want 48", n)
	}
	if n := unsafe.Sizeof(extraRec{}); n != 16 {
		t.Errorf("extraRec is %d bytes, want 16", n)
	}
}

// A hash is 32 lowercase hex digits, nothing else.
func TestParseHash(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"acbd18db4cc2f85cedef654fccc4a4d8", true},
		{"ACBD18DB4CC2F85CEDEF654FCCC4A4D8", false},
		{"acbd18db4cc2f85cedef654fccc4a4d", false},
		{"acbd18db4cc2f85cedef654fccc4a4d80", false},
		{"acbd18db4cc2f85cedef654fccc4a4dg", false},
		{"", false},
	} {
		h, ok := parseHash([]byte(tt.in))
		if ok != tt.ok || ok && h.String() != tt.in {
			t.Errorf("%q: %v, %v", tt.in, h, ok)
		}
	}
}

// Sizes beyond a block's and a volume number beyond the table's are
// refused, not stored wrongly.
func TestStoreRefuses(t *testing.T) {
	s := newStore()
	var h hash
	if err := s.want(h, 64<<20+1, 2); err == nil {
		t.Error("a live-set size over 64 MiB taken")
	}
	if err := s.addCopy(h, -1, 0, 1); err == nil {
		t.Error("a negative size taken")
	}
	if err := s.addCopy(h, 3, maxVolumes, 1); err == nil {
		t.Error("a volume number over the limit taken")
	}
	if s.len() != 0 {
		t.Errorf("%d blocks after refusals", s.len())
	}
}
