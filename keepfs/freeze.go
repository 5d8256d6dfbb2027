package keepfs

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Tree returns the tree of what was added; the builder is empty
// afterwards. It fails when a path was added twice (other than in
// several streams of one AddText) or both as a file and a directory.
func (b *TreeBuilder) Tree() (*Tree, error) {
	defer func() { *b = TreeBuilder{} }()
	if b.entries == nil {
		return &Tree{nodes: []node{{nameEnd: dirBit}}}, nil
	}
	if uint64(len(b.segs)) >= 1<<32 || uint64(len(b.entries)) >= 1<<32-1 || uint64(len(b.blocks)) >= 1<<32 {
		return nil, errors.New("the manifests hold more than 2³² files, segments or blocks")
	}
	kids := b.children()
	t := &Tree{
		names:  make([]byte, 0, len(b.names)),
		nodes:  make([]node, 0, len(b.entries)),
		blocks: slices.Clip(b.blocks),
	}
	t.nodes = append(t.nodes, node{nameEnd: dirBit})
	// Breadth first, so that each directory's children are consecutive.
	type queued struct{ entry, node uint32 }
	queue := []queued{{0, 0}}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		list, err := b.merge(kids[q.entry])
		if err != nil {
			return nil, err
		}
		t.nodes[q.node].first, t.nodes[q.node].count = uint32(len(t.nodes)), uint32(len(list))
		for _, i := range list {
			t.names = append(t.names, b.nameBytes(i)...)
			if len(t.names) >= dirBit {
				return nil, errors.New("the names in the manifests add up to 2 GiB or more")
			}
			x := node{nameEnd: uint32(len(t.names))}
			if e := b.entries[i]; e.isDir() {
				x.nameEnd |= dirBit
				queue = append(queue, queued{i, uint32(len(t.nodes))})
			} else {
				x.first, x.count = e.first, e.count
			}
			t.nodes = append(t.nodes, x)
		}
	}
	t.segs = slices.Clip(b.segs) // not copied: at most a quarter more than needed, from append's growth
	return t, nil
}

// children returns each directory entry's children, sorted by name,
// those of one name in the order they were added.
func (b *TreeBuilder) children() map[uint32][]uint32 {
	kids := map[uint32][]uint32{}
	for i, e := range b.entries[1:] {
		kids[e.parent] = append(kids[e.parent], uint32(i+1))
	}
	for _, list := range kids {
		slices.SortStableFunc(list, func(x, y uint32) int { return bytes.Compare(b.nameBytes(x), b.nameBytes(y)) })
	}
	return kids
}

// merge returns the sorted children list without duplicate names: a
// file listed in several streams of one AddText becomes one entry whose
// segments (moved to the end of the table, to be consecutive) are theirs
// in order. Any other duplicate is an error.
func (b *TreeBuilder) merge(list []uint32) ([]uint32, error) {
	out := list[:0]
	for k := 0; k < len(list); {
		i, j := list[k], k+1
		for j < len(list) && bytes.Equal(b.nameBytes(list[j]), b.nameBytes(i)) {
			j++
		}
		if j > k+1 {
			if err := b.join(list[k:j]); err != nil {
				return nil, err
			}
		}
		out = append(out, i)
		k = j
	}
	return out, nil
}

// join makes same[0] the file of all of same's segments, in order.
func (b *TreeBuilder) join(same []uint32) error {
	first := b.entries[same[0]]
	for _, i := range same[1:] {
		e := b.entries[i]
		if e.isDir() || first.isDir() {
			return fmt.Errorf("%q is both a file and a directory", b.path(i))
		}
		if e.text == 0 || e.text != first.text {
			return fmt.Errorf("%q is listed twice", b.path(i))
		}
	}
	start := uint32(len(b.segs))
	for _, i := range same {
		e := b.entries[i]
		b.segs = append(b.segs, b.segs[e.first:e.first+e.count]...)
	}
	b.entries[same[0]].first, b.entries[same[0]].count = start, uint32(len(b.segs))-start
	return nil
}

// path returns entry i's slash-separated path.
func (b *TreeBuilder) path(i uint32) string {
	var parts []string
	for ; i != 0; i = b.entries[i].parent {
		parts = append(parts, b.name(i))
	}
	slices.Reverse(parts)
	return cmp.Or(strings.Join(parts, "/"), ".")
}
