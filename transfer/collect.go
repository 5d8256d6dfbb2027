package transfer

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Input is one file to store: where to read it and its name in the manifest.
type Input struct {
	Src  string // path on disk, or "-" for stdin
	Name string // path in the manifest
	Dir  bool   // an (empty) directory entry
	// Size and ModTime are the file's when it was collected; Size is -1
	// for stdin, whose size is not known in advance.
	Size    int64
	ModTime time.Time
}

// CollectOptions adjust CollectInputs.
type CollectOptions struct {
	// NoFollowLinks stores no symbolic links at all (each is skipped with
	// a warning). By default links are followed, as arv-put does: a link
	// to a file stores the file's content under the link's name, a link
	// to a directory the directory's tree.
	NoFollowLinks bool
	// Warn, if set, is told of every entry skipped and why: sockets,
	// FIFOs, devices, dangling links, links into a directory's own
	// ancestors (which would loop forever) and, with NoFollowLinks, every
	// link.
	Warn func(msg string)
	// Exclude lists glob patterns (path.Match syntax) of files and
	// directories not to store, as arv-put's --exclude: a pattern with
	// no "/" is matched against the base name of every entry; one with a
	// "/" against the entry's path below the directory named on the
	// command line ("sub/*.txt"). An excluded directory is not entered.
	Exclude []string
	// StdinName is the name stdin ("-") is stored under; "" means "stdin".
	StdinName string
}

// CollectInputs expands the command-line paths into files and directories
// to store, less those excluded, in a stable order (each directory's entries sorted by name),
// and sums the files' sizes for the progress bar. A path named on the
// command line that cannot be stored is an error; an entry found inside a
// directory that cannot be stored is skipped with a warning.
func CollectInputs(paths []string, opts CollectOptions) ([]Input, int64, error) {
	c := collector{opts: opts}
	if c.opts.Warn == nil {
		c.opts.Warn = func(string) {}
	}
	for _, pat := range opts.Exclude {
		if _, err := path.Match(pat, ""); err != nil {
			return nil, 0, fmt.Errorf("exclude pattern %q: %w", pat, err)
		}
	}
	for _, p := range paths {
		if err := c.top(p); err != nil {
			return nil, 0, err
		}
	}
	return c.out, c.total, nil
}

type collector struct {
	opts  CollectOptions
	out   []Input
	total int64
}

// top adds one command-line path.
func (c *collector) top(p string) error {
	if p == "-" {
		name := c.opts.StdinName
		if name == "" {
			name = "stdin"
		}
		c.out = append(c.out, Input{Src: "-", Name: name, Size: -1})
		return nil
	}
	// The name under which p's content is stored: its base name, or
	// nothing for "/" (its content then goes at the top level).
	abs, err := filepath.Abs(p)
	if err != nil {
		return err
	}
	base := filepath.Base(abs)
	if base == string(filepath.Separator) {
		base = ""
	}
	linfo, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, unwrapPath(err))
	}
	if linfo.Mode()&fs.ModeSymlink != 0 && c.opts.NoFollowLinks {
		return fmt.Errorf("%s is a symbolic link, and --no-follow-links stores none", p)
	}
	info, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%s is a symbolic link to %s, which cannot be read: %w", p, readLink(p), unwrapPath(err))
	}
	switch {
	case info.Mode().IsRegular():
		c.file(p, base, info)
		return nil
	case info.IsDir():
		if base != "" {
			c.out = append(c.out, Input{Src: p, Name: base, Dir: true})
		}
		return c.dir(p, base, "", []fs.FileInfo{info})
	}
	return fmt.Errorf("%s is a %s, not a file or directory; not stored", p, kind(info.Mode()))
}

func (c *collector) file(src, name string, info fs.FileInfo) {
	c.out = append(c.out, Input{Src: src, Name: name, Size: info.Size(), ModTime: info.ModTime()})
	c.total += info.Size()
}

// dir adds the entries of the directory src, stored as name; rel is its
// path below the command-line directory ("" at the top). ancestors are
// the directories from the top down to src itself, to recognise a link
// back into one of them.
func (c *collector) dir(src, name, rel string, ancestors []fs.FileInfo) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("%s: %w", src, unwrapPath(err))
	}
	for _, e := range entries {
		p := filepath.Join(src, e.Name())
		n := path.Join(name, e.Name())
		r := path.Join(rel, e.Name())
		if c.excluded(r) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			c.opts.Warn(fmt.Sprintf("skipping %s: %v", p, unwrapPath(err)))
			continue
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			if c.opts.NoFollowLinks {
				c.opts.Warn(fmt.Sprintf("skipping %s: a symbolic link (to %s), and links are not followed", p, readLink(p)))
				continue
			}
			if info, err = os.Stat(p); err != nil {
				c.opts.Warn(fmt.Sprintf("skipping %s: a symbolic link to %s, which cannot be read (%v)", p, readLink(p), unwrapPath(err)))
				continue
			}
		}
		switch {
		case info.Mode().IsRegular():
			c.file(p, n, info)
		case info.IsDir():
			if loops(info, ancestors) {
				c.opts.Warn(fmt.Sprintf("skipping %s: a symbolic link to %s, which contains it (following it would never end)", p, readLink(p)))
				continue
			}
			c.out = append(c.out, Input{Src: p, Name: n, Dir: true})
			if err := c.dir(p, n, r, append(ancestors, info)); err != nil {
				return err
			}
		default:
			c.opts.Warn(fmt.Sprintf("skipping %s: a %s, not a file or directory", p, kind(info.Mode())))
		}
	}
	return nil
}

// excluded reports whether the entry at rel (below the command-line
// directory) matches an exclude pattern.
func (c *collector) excluded(rel string) bool {
	for _, pat := range c.opts.Exclude {
		target := rel
		if !strings.Contains(pat, "/") {
			target = path.Base(rel)
		}
		if ok, _ := path.Match(strings.TrimPrefix(pat, "./"), target); ok {
			return true
		}
	}
	return false
}

// loops reports whether the directory info is one of ancestors.
func loops(info fs.FileInfo, ancestors []fs.FileInfo) bool {
	for _, a := range ancestors {
		if os.SameFile(info, a) {
			return true
		}
	}
	return false
}

// kind names a file mode that is neither a regular file nor a directory.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func readLink(p string) string {
	t, err := os.Readlink(p)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%q", t)
}

// unwrapPath drops the *fs.PathError wrapping of err, for messages that
// already name the path.
func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
