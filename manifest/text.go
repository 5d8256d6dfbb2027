package manifest

import (
	"cmp"
	"crypto/md5"
	"encoding/hex"
	"slices"
	"strconv"

	"github.com/keepproject/keep/locator"
)

// emptyLocator is written for a stream that holds no data.
const emptyLocator = locator.EmptyHash + "+0"

// Text returns m as normalized manifest text:
//
//   - one stream per directory that holds files, sorted by path component
//     (so "./a" < "./a/b" < "./a b"), each file in the stream of its
//     directory under its base name, files sorted by name;
//   - each stream lists the blocks it uses once each, in the order its
//     sorted files first use them, and a stream with no data lists
//     d41d8cd98f00b204e9800998ecf8427e+0;
//   - contiguous ranges of a file are merged into one pos:len token, and an
//     empty file is written as 0:0:name;
//   - an empty directory is written as a stream holding just 0:0:\056;
//   - bytes 0x00-0x20, ':' and '\' in names are escaped as \ooo.
//
// Locators are written as given, signatures included; a block used under
// several locators with different hints is written with the first one.
// m must be valid (see Validate).
func (m *Manifest) Text() string {
	return string(m.appendText(nil, false))
}

// BareText returns m's normalized text with every locator cut down to
// hash+size: the text the portable data hash is taken of, and the form to
// store a manifest in Keep under that hash.
func (m *Manifest) BareText() string {
	return string(m.appendText(nil, true))
}

// PortableDataHash returns the portable data hash of m: the MD5 of its
// normalized text with every locator cut down to hash+size, then "+" and
// the length of that text. The empty manifest's is
// d41d8cd98f00b204e9800998ecf8427e+0.
func (m *Manifest) PortableDataHash() string {
	text := m.appendText(nil, true)
	sum := md5.Sum(text)
	return hex.EncodeToString(sum[:]) + "+" + strconv.Itoa(len(text))
}

// streamFile is a file placed in the stream of its directory.
type streamFile struct {
	name string
	file *File
}

// stream is one line of normalized text.
type stream struct {
	dir   string
	files []streamFile
	empty bool // an empty directory: written with the \056 marker
}

func (m *Manifest) appendText(b []byte, bare bool) []byte {
	byDir := make(map[string]*stream)
	get := func(dir string) *stream {
		s := byDir[dir]
		if s == nil {
			s = &stream{dir: dir}
			byDir[dir] = s
		}
		return s
	}
	// A directory needs the empty marker only if nothing lies beneath it.
	occupied := make(map[string]bool)
	for i := range m.Files {
		f := &m.Files[i]
		dir, name := splitPath(f.Path)
		s := get(dir)
		s.files = append(s.files, streamFile{name, f})
		for a := range ancestors(f.Path) {
			occupied[a] = true
		}
	}
	for _, d := range m.Dirs {
		for a := range ancestors(d) {
			occupied[a] = true
		}
	}
	for _, d := range m.Dirs {
		if !occupied[d] {
			get(d).empty = true
		}
	}

	streams := make([]*stream, 0, len(byDir))
	for _, s := range byDir {
		streams = append(streams, s)
	}
	slices.SortFunc(streams, func(x, y *stream) int { return comparePath(x.dir, y.dir) })

	starts := make(map[blockKey]int64)
	for _, s := range streams {
		slices.SortStableFunc(s.files, func(x, y streamFile) int { return cmp.Compare(x.name, y.name) })
		if s.dir == "" {
			b = append(b, '.')
		} else {
			b = append(b, '.', '/')
			b = appendEscaped(b, s.dir)
		}

		clear(starts)
		var size int64
		for _, sf := range s.files {
			for _, seg := range sf.file.Segments {
				k := keyOf(seg.Block)
				if _, ok := starts[k]; ok || seg.Length == 0 {
					continue
				}
				starts[k] = size
				size += seg.Block.Size
				b = append(b, ' ')
				if bare {
					b = append(b, seg.Block.Bare().String()...)
				} else {
					b = append(b, seg.Block.String()...)
				}
			}
		}
		if len(starts) == 0 {
			b = append(b, ' ')
			b = append(b, emptyLocator...)
		}

		for _, sf := range s.files {
			b = appendFileTokens(b, sf, starts)
		}
		if s.empty {
			b = append(b, ` 0:0:\056`...)
		}
		b = append(b, '\n')
	}
	return b
}

// appendFileTokens writes the pos:len:name tokens of one file, merging
// segments that are contiguous in the stream.
func appendFileTokens(b []byte, sf streamFile, starts map[blockKey]int64) []byte {
	emit := func(pos, n int64) {
		b = append(b, ' ')
		b = strconv.AppendInt(b, pos, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, n, 10)
		b = append(b, ':')
		b = appendEscaped(b, sf.name)
	}
	var pos, n int64
	for _, seg := range sf.file.Segments {
		if seg.Length == 0 {
			continue
		}
		p := starts[keyOf(seg.Block)] + seg.Offset
		if n > 0 && pos+n == p {
			n += seg.Length
			continue
		}
		if n > 0 {
			emit(pos, n)
		}
		pos, n = p, seg.Length
	}
	// n == 0 here only for an empty file, which is still listed.
	emit(pos, n)
	return b
}

// appendEscaped appends s with bytes 0x00-0x20, ':' and '\' written as
// \ooo. '/' is left alone, so a directory path can be escaped whole.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c == ':' || c == '\\' {
			b = append(b, '\\', '0'+c>>6, '0'+c>>3&7, '0'+c&7)
		} else {
			b = append(b, c)
		}
	}
	return b
}

// comparePath orders slash-separated paths component by component, which
// amounts to comparing bytes with '/' below every other byte. Every
// directory then sorts right before its subdirectories.
func comparePath(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		switch {
		case x == y:
			continue
		case x == '/':
			return -1
		case y == '/':
			return 1
		}
		return cmp.Compare(x, y)
	}
	return cmp.Compare(len(a), len(b))
}
