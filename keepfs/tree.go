// Package keepfs serves manifests as a read-only FUSE filesystem: the
// tree is built once, compactly, from the manifests, so that listing and
// stat never touch a server; file reads fetch blocks through keepclient,
// verified, into a bounded in-memory cache (and optionally a disk cache),
// with readahead for sequential readers.
package keepfs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
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

// node is one file or directory of a Tree.
type node struct {
	nameEnd uint32 // the name is names[previous node's nameEnd:nameEnd]
	first   uint32 // a directory's first child node; a file's first segment
	count   uint32 // a directory's children; a file's segments
	size    int64  // a file's size; -1 for a directory
}

// segment is a byte range of one block of the Tree's block table.
type segment struct {
	block          uint32
	offset, length uint32
}

func (n node) isDir() bool { return n.size < 0 }

// name returns node i's name ("" for the root).
func (t *Tree) name(i uint32) string {
	start := uint32(0)
	if i > 0 {
		start = t.nodes[i-1].nameEnd
	}
	return string(t.names[start:t.nodes[i].nameEnd])
}

// nameBytes is name without the copy, for comparisons.
func (t *Tree) nameBytes(i uint32) []byte {
	start := uint32(0)
	if i > 0 {
		start = t.nodes[i-1].nameEnd
	}
	return t.names[start:t.nodes[i].nameEnd]
}

// lookup returns the child of directory dir called name.
func (t *Tree) lookup(dir uint32, name string) (uint32, bool) {
	d := t.nodes[dir]
	lo, hi := d.first, d.first+d.count
	for lo < hi {
		mid := lo + (hi-lo)/2
		switch c := strings.Compare(string(t.nameBytes(mid)), name); {
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
	for _, x := range t.nodes {
		if !x.isDir() {
			total += x.size
		}
	}
	return total
}

// TreeBuilder collects manifests into a Tree. Its zero value is ready to
// use; it is not safe for concurrent use.
type TreeBuilder struct {
	root     *bdir
	segs     []segment
	blocks   []locator.Locator
	blockIdx map[blockKey]uint32
}

// blockKey identifies a block whatever its hints.
type blockKey struct {
	hash string
	size int64
}

// bdir is a directory while the tree is being built.
type bdir struct {
	dirs  map[string]*bdir
	files map[string]bfile
}

// bfile is a file while the tree is being built.
type bfile struct {
	first, count uint32
	size         int64
}

func newBdir() *bdir { return &bdir{dirs: map[string]*bdir{}, files: map[string]bfile{}} }

// Add adds m's files and directories under the directory at prefix
// ("" for the root; slash-separated). The builder keeps nothing of m but
// its names and the distinct blocks, so m may be dropped afterwards. A
// path that is already a file, or a file where a directory is, is an
// error.
func (b *TreeBuilder) Add(prefix string, m *manifest.Manifest) error {
	if b.root == nil {
		b.root = newBdir()
		b.blockIdx = map[blockKey]uint32{}
	}
	base, err := b.dir(b.root, prefix)
	if err != nil {
		return err
	}
	for _, d := range m.Dirs {
		if _, err := b.dir(base, d); err != nil {
			return err
		}
	}
	for _, f := range m.Files {
		if err := b.addFile(base, f); err != nil {
			return err
		}
	}
	return nil
}

// dir returns the directory at path under d, creating it and its parents.
func (b *TreeBuilder) dir(d *bdir, path string) (*bdir, error) {
	if path == "" {
		return d, nil
	}
	for name := range strings.SplitSeq(path, "/") {
		if _, ok := d.files[name]; ok {
			return nil, fmt.Errorf("%q is both a file and a directory", path)
		}
		next := d.dirs[name]
		if next == nil {
			next = newBdir()
			d.dirs[strings.Clone(name)] = next
		}
		d = next
	}
	return d, nil
}

// addFile adds f under d.
func (b *TreeBuilder) addFile(d *bdir, f manifest.File) error {
	dirPath, name := "", f.Path
	if i := strings.LastIndexByte(f.Path, '/'); i >= 0 {
		dirPath, name = f.Path[:i], f.Path[i+1:]
	}
	parent, err := b.dir(d, dirPath)
	if err != nil {
		return err
	}
	if _, ok := parent.dirs[name]; ok {
		return fmt.Errorf("%q is both a file and a directory", f.Path)
	}
	if _, ok := parent.files[name]; ok {
		return fmt.Errorf("%q is listed twice", f.Path)
	}
	bf := bfile{first: uint32(len(b.segs))}
	for _, s := range f.Segments {
		if s.Length == 0 {
			continue
		}
		if s.Offset+s.Length > locator.MaxBlockSize {
			return fmt.Errorf("%q: a segment ends past %d bytes, beyond any block", f.Path, int64(locator.MaxBlockSize))
		}
		bf.size += s.Length
		b.segs = append(b.segs, segment{block: b.block(s.Block), offset: uint32(s.Offset), length: uint32(s.Length)})
	}
	bf.count = uint32(len(b.segs)) - bf.first
	parent.files[strings.Clone(name)] = bf
	return nil
}

// block returns l's index in the block table, adding it if new.
func (b *TreeBuilder) block(l locator.Locator) uint32 {
	k := blockKey{l.Hash, l.Size}
	if i, ok := b.blockIdx[k]; ok {
		return i
	}
	i := uint32(len(b.blocks))
	b.blocks = append(b.blocks, locator.Locator{Hash: strings.Clone(l.Hash), Size: l.Size, Hints: cloneHints(l.Hints)})
	b.blockIdx[k] = i
	return i
}

func cloneHints(h []string) []string {
	if len(h) == 0 {
		return nil
	}
	out := make([]string, len(h))
	for i, s := range h {
		out[i] = strings.Clone(s)
	}
	return out
}

// Tree returns the tree built so far; the builder is empty afterwards.
func (b *TreeBuilder) Tree() *Tree {
	if b.root == nil {
		b.root = newBdir()
	}
	t := &Tree{nodes: []node{{size: -1}}, segs: slices.Clip(b.segs), blocks: slices.Clip(b.blocks)}
	// Breadth first, so that each directory's children are consecutive.
	type queued struct {
		d    *bdir
		node uint32
	}
	queue := []queued{{b.root, 0}}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		names := make([]string, 0, len(q.d.dirs)+len(q.d.files))
		for n := range q.d.dirs {
			names = append(names, n)
		}
		for n := range q.d.files {
			names = append(names, n)
		}
		slices.Sort(names)
		t.nodes[q.node].first, t.nodes[q.node].count = uint32(len(t.nodes)), uint32(len(names))
		for _, n := range names {
			t.names = append(t.names, n...)
			x := node{nameEnd: uint32(len(t.names)), size: -1}
			if sub, ok := q.d.dirs[n]; ok {
				queue = append(queue, queued{sub, uint32(len(t.nodes))})
			} else {
				f := q.d.files[n]
				x.first, x.count, x.size = f.first, f.count, f.size
			}
			t.nodes = append(t.nodes, x)
		}
	}
	t.names, t.nodes = slices.Clip(t.names), slices.Clip(t.nodes)
	*b = TreeBuilder{}
	return t
}
