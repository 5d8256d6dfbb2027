// Package manifest reads and writes Arvados manifest text, the format that
// lists a collection's files as byte ranges of Keep blocks.
//
// The model is deliberately flat: a Manifest is a list of Files, and a File
// is a list of Segments, each a byte range of one block. Parse resolves the
// stream offsets of manifest text (which may cross block boundaries) into
// such per-block segments, and Text writes the model back in normalized
// form. A Packer builds a manifest while packing many files into shared
// blocks for upload; WriteFile reassembles one file from its blocks.
//
// Paths are slash-separated and relative, with no leading "./":
// "dir/sub/name". They have no empty, "." or ".." components.
package manifest

import (
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"

	"github.com/keepproject/keep/locator"
)

// Segment is the part of a file that lies in one block.
type Segment struct {
	// Block is the block holding the bytes, as written in the manifest,
	// signature hints included.
	Block locator.Locator
	// Offset is where the bytes start within the block.
	Offset int64
	// Length is the number of bytes.
	Length int64
}

// File is one file of a manifest: its path and its content as a sequence
// of block segments. An empty file has no segments.
type File struct {
	// Path is the file's slash-separated path, e.g. "dir/sub/name".
	Path string
	// Segments, read in order, make up the file's content.
	Segments []Segment
}

// Size returns the file's length in bytes.
func (f File) Size() int64 {
	var n int64
	for _, s := range f.Segments {
		n += s.Length
	}
	return n
}

// Manifest is a collection of files stored in Keep blocks.
type Manifest struct {
	// Files lists each file once. Parse keeps the order in which paths
	// first appear; Text sorts them.
	Files []File
	// Dirs lists directories that exist even with nothing beneath them
	// (empty directories). Listing a directory that also holds files is
	// allowed and changes nothing.
	Dirs []string
}

// Blocks returns the distinct blocks the files use, in order of first use
// by m.Files. Two locators with the same hash and size are the same block
// (whatever their hints); the first one seen is returned.
func (m *Manifest) Blocks() []locator.Locator {
	var out []locator.Locator
	seen := make(map[blockKey]bool)
	for _, f := range m.Files {
		for _, s := range f.Segments {
			k := keyOf(s.Block)
			if !seen[k] {
				seen[k] = true
				out = append(out, s.Block)
			}
		}
	}
	return out
}

// Validate reports whether m is well formed: paths valid and distinct, no
// path both a file and a directory, every block locator valid with a size,
// and every segment inside its block. Manifests from Parse and
// Packer.Manifest are always valid; Text assumes a valid manifest.
func (m *Manifest) Validate() error {
	const op = "invalid manifest"
	t := newTree()
	checked := make(map[blockKey]bool)
	for i, f := range m.Files {
		if err := checkPath(f.Path); err != nil {
			return fmt.Errorf("%s: file %d: path %s", op, i+1, err)
		}
		if t.files[f.Path] {
			return fmt.Errorf("%s: file %d: path %q listed twice", op, i+1, f.Path)
		}
		if err := t.addFile(f.Path); err != nil {
			return fmt.Errorf("%s: file %d: %v", op, i+1, err)
		}
		for j, s := range f.Segments {
			k := keyOf(s.Block)
			if !checked[k] {
				if _, err := locator.Parse(s.Block.String()); err != nil {
					return fmt.Errorf("%s: %q segment %d: %v", op, f.Path, j+1, err)
				}
				if s.Block.Size < 0 {
					return fmt.Errorf("%s: %q segment %d: locator %s has no size", op, f.Path, j+1, s.Block)
				}
				checked[k] = true
			}
			if s.Offset < 0 || s.Length < 0 || s.Offset > s.Block.Size || s.Length > s.Block.Size-s.Offset {
				return fmt.Errorf("%s: %q segment %d: range %d+%d is outside block %s", op, f.Path, j+1, s.Offset, s.Length, s.Block)
			}
		}
	}
	for _, d := range m.Dirs {
		if err := checkPath(d); err != nil {
			return fmt.Errorf("%s: directory %s", op, err)
		}
		if err := t.addDir(d); err != nil {
			return fmt.Errorf("%s: %v", op, err)
		}
	}
	return nil
}

// blockKey identifies a block regardless of hints: signatures differ from
// one copy of a locator to the next, the content does not.
type blockKey struct {
	hash string
	size int64
}

func keyOf(l locator.Locator) blockKey { return blockKey{l.Hash, l.Size} }

// appendSegment appends s to segs, extending the last segment instead when
// s continues it within the same block.
func appendSegment(segs []Segment, s Segment) []Segment {
	if s.Length == 0 {
		return segs
	}
	if n := len(segs); n > 0 {
		last := &segs[n-1]
		if keyOf(last.Block) == keyOf(s.Block) && last.Offset+last.Length == s.Offset {
			last.Length += s.Length
			return segs
		}
	}
	return append(segs, s)
}

// checkPath reports why p is not a valid relative path. The error text
// starts with the quoted path so callers can prefix what kind of path it is.
func checkPath(p string) error {
	switch {
	case p == "":
		return errors.New(`"" is empty`)
	case p[0] == '/':
		return fmt.Errorf("%s starts with \"/\"", quote(p))
	case p[len(p)-1] == '/':
		return fmt.Errorf("%s ends with \"/\"", quote(p))
	case strings.Contains(p, "//"):
		return fmt.Errorf("%s contains \"//\"", quote(p))
	}
	for part := range strings.SplitSeq(p, "/") {
		if part == "." || part == ".." {
			return fmt.Errorf("%s has a %q component", quote(p), part)
		}
	}
	return nil
}

// splitPath splits p into its directory ("" for the top level) and base name.
func splitPath(p string) (dir, base string) {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

// tree tracks which paths are files and which are directories, so that no
// path ends up both.
type tree struct {
	files map[string]bool
	dirs  map[string]bool // explicit and implied directories
}

func newTree() tree {
	return tree{files: make(map[string]bool), dirs: make(map[string]bool)}
}

// addFile records file p and its ancestor directories. Adding the same file
// again is not an error; callers that forbid it check t.files first.
func (t *tree) addFile(p string) error {
	if t.dirs[p] {
		return fmt.Errorf("%s is both a file and a directory", quote(p))
	}
	if err := t.addAncestors(p); err != nil {
		return err
	}
	t.files[p] = true
	return nil
}

// addDir records directory p and its ancestors.
func (t *tree) addDir(p string) error {
	if t.files[p] {
		return fmt.Errorf("%s is both a file and a directory", quote(p))
	}
	if t.dirs[p] {
		return nil
	}
	if err := t.addAncestors(p); err != nil {
		return err
	}
	t.dirs[p] = true
	return nil
}

func (t *tree) addAncestors(p string) error {
	// Check before marking, so a rejected path leaves t unchanged.
	for a := range ancestors(p) {
		if t.dirs[a] {
			break // so are all of a's ancestors
		}
		if t.files[a] {
			return fmt.Errorf("%s is both a file and a directory", quote(a))
		}
	}
	for a := range ancestors(p) {
		if t.dirs[a] {
			break
		}
		t.dirs[a] = true
	}
	return nil
}

// ancestors yields p's proper ancestor directories, nearest first.
func ancestors(p string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := strings.LastIndexByte(p, '/'); i > 0; i = strings.LastIndexByte(p[:i], '/') {
			if !yield(p[:i]) {
				return
			}
		}
	}
}

// quote quotes s for an error message, shortening it if it is long: names
// in manifests can be arbitrarily long.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}
