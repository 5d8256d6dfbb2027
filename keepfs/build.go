package keepfs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// TreeBuilder collects manifests into a Tree. Its zero value is ready to
// use; it is not safe for concurrent use.
//
// While building it holds, per file, its name in one byte table and 20
// bytes; directories are found through a map, files are not looked up
// until Tree sorts them, which is where duplicates are found.
type TreeBuilder struct {
	texts    uint32            // AddText calls so far
	names    []byte            // the entries' names, in order of adding
	entries  []bentry          // files and directories, in order of adding
	dirIdx   map[dirKey]uint32 // directory entries by parent and name
	segs     []segment
	blocks   []locator.Locator
	blockIdx map[blockKey]uint32
}

// blockKey identifies a block whatever its hints.
type blockKey struct {
	hash string
	size int64
}

// dirKey names a directory: its parent entry and its name.
type dirKey struct {
	parent uint32
	name   string
}

// noEntry is the root's parent, and the root is entry 0.
const noEntry = ^uint32(0)

// bentry is a file or directory while the tree is being built.
type bentry struct {
	parent  uint32 // entry index of the directory holding it
	nameOff uint32 // name is names[nameOff:nameOff+nameLen]
	nameLen uint32
	first   uint32 // a file's segments
	count   uint32 // a file's segment count; dirCount for a directory
	text    uint32 // the AddText call that added a file, if any
}

// dirCount marks a directory's bentry.
const dirCount = ^uint32(0)

func (e bentry) isDir() bool { return e.count == dirCount }

// Add adds m's files and directories under the directory at prefix
// ("" for the root; slash-separated). The builder keeps nothing of m but
// its names and the distinct blocks, so m may be dropped afterwards. A
// path added twice, or both as a file and as a directory, makes Tree
// fail.
func (b *TreeBuilder) Add(prefix string, m *manifest.Manifest) error {
	return b.add(prefix, m, 0)
}

// AddText is Add for manifest text, parsed (by manifest.Parse) one
// stream at a time, so that the whole parsed manifest, several times
// the size of its text, is never in memory at once. A file listed in
// several streams has its segments joined in order, as Parse does.
func (b *TreeBuilder) AddText(prefix, text string) error {
	b.texts++
	for n := 1; text != ""; n++ {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line = text[:i+1]
		}
		text = text[len(line):]
		m, err := manifest.Parse(line)
		if se := (*manifest.SyntaxError)(nil); errors.As(err, &se) {
			se.Line = n
		}
		if err != nil {
			return err
		}
		if err := b.add(prefix, m, b.texts); err != nil {
			return err
		}
	}
	return nil
}

// add adds m under prefix for AddText call text (0: none).
func (b *TreeBuilder) add(prefix string, m *manifest.Manifest, text uint32) error {
	if b.dirIdx == nil {
		b.dirIdx = map[dirKey]uint32{}
		b.blockIdx = map[blockKey]uint32{}
		b.entries = []bentry{{parent: noEntry, count: dirCount}}
	}
	base := b.dir(0, prefix)
	for _, d := range m.Dirs {
		b.dir(base, d)
	}
	for _, f := range m.Files {
		dir, name := base, f.Path
		if i := strings.LastIndexByte(f.Path, '/'); i >= 0 {
			dir, name = b.dir(base, f.Path[:i]), f.Path[i+1:]
		}
		e := bentry{parent: dir, first: uint32(len(b.segs)), text: text}
		for _, s := range f.Segments {
			if s.Length == 0 {
				continue
			}
			if s.Offset+s.Length > locator.MaxBlockSize {
				return fmt.Errorf("%q: a segment ends past %d bytes, beyond any block", f.Path, int64(locator.MaxBlockSize))
			}
			b.segs = append(b.segs, segment{block: b.block(s.Block), offset: uint32(s.Offset), length: uint32(s.Length)})
		}
		e.count = uint32(len(b.segs)) - e.first
		b.addEntry(e, name)
	}
	return nil
}

// addEntry appends e, named name.
func (b *TreeBuilder) addEntry(e bentry, name string) uint32 {
	e.nameOff, e.nameLen = uint32(len(b.names)), uint32(len(name))
	b.names = append(b.names, name...)
	b.entries = append(b.entries, e)
	return uint32(len(b.entries) - 1)
}

// dir returns the entry of the directory at path under directory d,
// adding it and its parents if new.
func (b *TreeBuilder) dir(d uint32, path string) uint32 {
	if path == "" {
		return d
	}
	for name := range strings.SplitSeq(path, "/") {
		k := dirKey{d, name}
		next, ok := b.dirIdx[k]
		if !ok {
			next = b.addEntry(bentry{parent: d, count: dirCount}, name)
			k.name = b.name(next)
			b.dirIdx[k] = next
		}
		d = next
	}
	return d
}

func (b *TreeBuilder) name(i uint32) string {
	e := b.entries[i]
	return string(b.names[e.nameOff : e.nameOff+e.nameLen])
}

func (b *TreeBuilder) nameBytes(i uint32) []byte {
	e := b.entries[i]
	return b.names[e.nameOff : e.nameOff+e.nameLen]
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
