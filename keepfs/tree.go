// Package keepfs serves manifests as a read-only FUSE filesystem: the
// tree is built once, compactly, from the manifests, so that listing and
// stat never touch a server; file reads fetch blocks through keepclient,
// verified, into a bounded in-memory cache (and optionally a disk cache),
// with readahead for sequential readers.
package keepfs

import (
	"github.com/keepproject/keep/locator"
)

// Tree is the directory tree of one or more manifests, held compactly:
// names in one byte table, nodes and segments in flat slices indexing
// into it and into one table of distinct blocks. Build one with a
// TreeBuilder; a Tree is immutable and safe for concurrent use.
type Tree struct {
	names  []byte            // every node's name, in node order
	nodes  []node            // node 0 is the root; a directory's children are consecutive, sorted by name
	segs   []segment         // every file's segments, each file's consecutive
	blocks []locator.Locator // distinct blocks, as the manifest first named them
}

// node is one file or directory of a Tree: 12 bytes.
type node struct {
	nameEnd uint32 // the name is names[previous node's end:end], end being nameEnd without dirBit
	first   uint32 // a directory's first child node; a file's first segment
	count   uint32 // a directory's children; a file's segments
}

// dirBit marks a directory's nameEnd.
const dirBit = 1 << 31

// segment is a byte range of one block of the Tree's block table.
type segment struct {
	block          uint32
	offset, length uint32
}

func (n node) isDir() bool { return n.nameEnd&dirBit != 0 }
func (n node) end() uint32 { return n.nameEnd &^ dirBit }

// size returns file i's size, adding up its segments (a file of 1 TiB
// has 16,384), so that small files, most of a large tree, cost no more.
func (t *Tree) size(i uint32) int64 {
	n := t.nodes[i]
	var total int64
	for _, s := range t.segs[n.first : n.first+n.count] {
		total += int64(s.length)
	}
	return total
}

// name returns node i's name ("" for the root).
func (t *Tree) name(i uint32) string {
	return string(t.nameBytes(i))
}

// nameBytes is name without the copy, for comparisons.
func (t *Tree) nameBytes(i uint32) []byte {
	start := uint32(0)
	if i > 0 {
		start = t.nodes[i-1].end()
	}
	return t.names[start:t.nodes[i].end()]
}

// lookup returns the child of directory dir called name.
func (t *Tree) lookup(dir uint32, name string) (uint32, bool) {
	d := t.nodes[dir]
	lo, hi := d.first, d.first+d.count
	for lo < hi {
		mid := lo + (hi-lo)/2
		switch c := compareName(t.nameBytes(mid), name); {
		case c == 0:
			return mid, true
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0, false
}

// compareName compares b and s as strings.Compare does, without making
// a string of b.
func compareName(b []byte, s string) int {
	for i := 0; i < len(b) && i < len(s); i++ {
		if b[i] != s[i] {
			return int(b[i]) - int(s[i])
		}
	}
	return len(b) - len(s)
}

// Files returns the number of files in the tree.
func (t *Tree) Files() int {
	n := 0
	for _, x := range t.nodes {
		if !x.isDir() {
			n++
		}
	}
	return n
}

// Size returns the total size of the tree's files.
func (t *Tree) Size() int64 {
	var total int64
	for i, x := range t.nodes {
		if !x.isDir() {
			total += t.size(uint32(i))
		}
	}
	return total
}
