package transfer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// GetOptions adjust Get.
type GetOptions struct {
	// BlocksAhead is the number of blocks fetched ahead of the one being
	// written; 0 fetches none ahead. Negative means the default, 4.
	BlocksAhead int
	// Progress, if set, is called with the number of bytes written.
	Progress func(n int)
	// Overwrite replaces files that already exist. Without it or
	// SkipExisting, Get writes nothing when any target exists.
	Overwrite bool
	// SkipExisting leaves files that already exist as they are, and
	// fetches nothing for them.
	SkipExisting bool
	// MD5, if set, is told each file's MD5 (hex) once it is written, as
	// arv-get --md5sum shows.
	MD5 func(path, sum string)
}

// ExistsError reports that Get would have replaced existing files, and so
// wrote nothing.
type ExistsError struct {
	Paths []string // the targets that exist, in manifest order
}

func (e *ExistsError) Error() string {
	n := len(e.Paths)
	if n == 1 {
		return fmt.Sprintf("%s already exists; nothing written (-f overwrites, --skip-existing keeps it)", e.Paths[0])
	}
	return fmt.Sprintf("%d files already exist, the first %s; nothing written (-f overwrites, --skip-existing keeps them)", n, e.Paths[0])
}

// target is one file of a manifest and where Get writes it.
type target struct {
	file manifest.File
	dst  string
}

// Get writes the manifest's files: with out "" or "-", its only file to
// stdout; with out naming a directory (one that exists, or any path
// ending in a slash, created if need be), every file under it; otherwise
// its only file at out. Before writing anything it checks that no target
// exists (see GetOptions.Overwrite and SkipExisting). Each file is written
// to a temporary name and renamed into place when complete, so an
// interrupted Get leaves no partial file under a real name.
func Get(ctx context.Context, kc *keepclient.Client, m *manifest.Manifest, out string, stdout io.Writer, opts GetOptions) error {
	ahead, progress := opts.BlocksAhead, opts.Progress
	if ahead < 0 {
		ahead = 4
	}
	if progress == nil {
		progress = func(int) {}
	}
	if out == "" || out == "-" {
		if len(m.Files) != 1 {
			return fmt.Errorf("the manifest has %d files; give -o DIR to write them", len(m.Files))
		}
		pf := newPrefetcher(kc, m, ahead, progress)
		defer pf.close()
		w, sum := summing(stdout, opts.MD5 != nil)
		if err := manifest.WriteFile(ctx, m.Files[0], pf.fetch, w); err != nil {
			return err
		}
		if opts.MD5 != nil {
			opts.MD5(m.Files[0].Path, sum())
		}
		return nil
	}
	targets, dirMode, err := plan(m, out)
	if err != nil {
		return err
	}
	if targets, err = checkExisting(targets, opts); err != nil {
		return err
	}
	if dirMode {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
	}
	kept := &manifest.Manifest{}
	for _, t := range targets {
		kept.Files = append(kept.Files, t.file)
	}
	pf := newPrefetcher(kc, kept, ahead, progress)
	defer pf.close()
	for _, t := range targets {
		if err := os.MkdirAll(filepath.Dir(t.dst), 0o755); err != nil {
			return err
		}
		var sum string
		if opts.MD5 == nil && wholeBlocks(t.file) {
			err = writeStreamed(ctx, kc, t.file, t.dst, ahead+1, pf.progress)
		} else {
			sum, err = writeOne(ctx, t.file, pf.fetch, t.dst, opts.MD5 != nil)
		}
		if err != nil {
			return err
		}
		if opts.MD5 != nil {
			opts.MD5(t.file.Path, sum)
		}
	}
	if dirMode {
		for _, d := range m.Dirs {
			if err := os.MkdirAll(filepath.Join(out, filepath.FromSlash(d)), 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

// plan returns where each of m's files goes for the output path out, and
// whether out is a directory.
func plan(m *manifest.Manifest, out string) ([]target, bool, error) {
	info, err := os.Stat(out)
	dirMode := len(m.Files) != 1 || strings.HasSuffix(out, "/") || strings.HasSuffix(out, string(filepath.Separator)) || err == nil && info.IsDir()
	if !dirMode {
		return []target{{m.Files[0], out}}, false, nil
	}
	var targets []target
	for _, f := range m.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			return nil, false, fmt.Errorf("manifest path %q escapes %s", f.Path, out)
		}
		targets = append(targets, target{f, filepath.Join(out, filepath.FromSlash(f.Path))})
	}
	return targets, true, nil
}

// checkExisting returns the targets to write, or an *ExistsError when
// some exist and neither Overwrite nor SkipExisting says what to do. A
// target that is a directory is always an error.
func checkExisting(targets []target, opts GetOptions) ([]target, error) {
	var keep []target
	var exist []string
	for _, t := range targets {
		info, err := os.Lstat(t.dst)
		switch {
		case err != nil:
			keep = append(keep, t)
		case info.IsDir():
			return nil, fmt.Errorf("%s is a directory; the manifest has a file there", t.dst)
		case opts.Overwrite:
			keep = append(keep, t)
		case opts.SkipExisting:
		default:
			exist = append(exist, t.dst)
		}
	}
	if len(exist) > 0 {
		return nil, &ExistsError{Paths: exist}
	}
	return keep, nil
}

// writeOne writes f to dst and returns its MD5 if wantSum.
func writeOne(ctx context.Context, f manifest.File, fetch manifest.FetchFunc, dst string, wantSum bool) (string, error) {
	var sum func() string
	err := writeTemp(dst, func(tmp *os.File) error {
		var w io.Writer
		w, sum = summing(tmp, wantSum)
		if err := manifest.WriteFile(ctx, f, fetch, w); err != nil {
			return fmt.Errorf("%s: %w", f.Path, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return sum(), nil
}

// wholeBlocks reports whether each of f's segments is a whole block of
// known size, as in every file that started a block when it was stored
// (any file of 64 MiB or more that keep put stored alone, for one).
func wholeBlocks(f manifest.File) bool {
	for _, s := range f.Segments {
		if s.Length != 0 && (s.Offset != 0 || s.Block.Size < 0 || s.Length != s.Block.Size) {
			return false
		}
	}
	return true
}

// writeStreamed writes f, made of whole blocks, to dst: up to parallel
// blocks at once, each written into the file at its place as it arrives
// (keepclient.Client.GetTo), so that no block is held in memory. The
// file is renamed into place only once every block has been verified.
func writeStreamed(ctx context.Context, kc *keepclient.Client, f manifest.File, dst string, parallel int, progress *cappedProgress) error {
	return writeTemp(dst, func(tmp *os.File) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(parallel)
		var off int64
		for _, s := range f.Segments {
			if s.Length == 0 {
				continue
			}
			at := off
			g.Go(func() error {
				n, err := kc.GetTo(gctx, s.Block, tmp, at, func(n int) { progress.add(int64(n)) })
				if err == nil && n != s.Length {
					err = fmt.Errorf("got %d bytes", n)
				}
				if err != nil {
					return fmt.Errorf("writing a file: %q: block %s: %w", f.Path, s.Block.Bare(), err)
				}
				return nil
			})
			off += s.Length
		}
		return g.Wait()
	})
}

// writeTemp creates a temporary file beside dst, calls fill with it, and
// renames it to dst if fill succeeds; otherwise it removes it.
func writeTemp(dst string, fill func(*os.File) error) error {
	// A short temporary name, so that any name the directory can hold
	// can be restored.
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".keep-get-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	// CreateTemp makes the file private; a restored file gets the mode
	// os.Create would give it.
	if err := tmp.Chmod(0o666 &^ umask()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// summing returns w, also hashing what is written to it if on, and a
// function returning the MD5 in hex ("" when off).
func summing(w io.Writer, on bool) (io.Writer, func() string) {
	if !on {
		return w, func() string { return "" }
	}
	h := md5.New()
	return io.MultiWriter(w, h), func() string { return hex.EncodeToString(h.Sum(nil)) }
}

// prefetcher fetches a manifest's blocks in order of first use, up to
// ahead blocks before the one being written, so the pipe stays full.
type prefetcher struct {
	kc      *keepclient.Client
	order   []locator.Locator
	index   map[string]int // bare locator -> position in order
	ahead   int
	ctx     context.Context
	cancel  context.CancelFunc
	fetches map[int]*blockFetch
	free    [][]byte // buffers of blocks no longer needed, for reuse

	used     map[string]int64 // bytes of each block the files use, by bare locator
	progress *cappedProgress
}

type blockFetch struct {
	done chan struct{}
	data []byte
	err  error
}

// newPrefetcher returns a prefetcher for m's blocks that reports, as
// block bytes arrive, the share of them m's files use, up to m's size.
func newPrefetcher(kc *keepclient.Client, m *manifest.Manifest, ahead int, progress func(int)) *prefetcher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prefetcher{kc: kc, order: m.Blocks(), index: make(map[string]int), ahead: ahead, ctx: ctx, cancel: cancel, fetches: make(map[int]*blockFetch),
		used: make(map[string]int64)}
	var total int64
	for _, f := range m.Files {
		for _, s := range f.Segments {
			p.used[s.Block.Bare().String()] += s.Length
		}
		total += f.Size()
	}
	p.progress = &cappedProgress{limit: total, report: progress}
	for i, l := range p.order {
		if _, ok := p.index[l.Bare().String()]; !ok {
			p.index[l.Bare().String()] = i
		}
	}
	return p
}

func (p *prefetcher) start(i int) *blockFetch {
	if f, ok := p.fetches[i]; ok {
		return f
	}
	f := &blockFetch{done: make(chan struct{})}
	p.fetches[i] = f
	var buf []byte
	if n := len(p.free); n > 0 {
		buf, p.free = p.free[n-1], p.free[:n-1]
	}
	l := p.order[i]
	used := p.used[l.Bare().String()]
	var got int64
	report := func(n int) {
		// Scale what arrives to what the files use of the block.
		if l.Size > 0 {
			before := got * used / l.Size
			got += int64(n)
			p.progress.add(got*used/l.Size - before)
		}
	}
	go func() {
		defer close(f.done)
		f.data, f.err = p.kc.GetWithProgress(p.ctx, l, buf, report)
	}()
	return f
}

// cappedProgress passes progress on, never adding up to more than limit
// (a block read twice is not counted twice).
type cappedProgress struct {
	limit  int64
	report func(int)
	done   atomic.Int64
}

func (c *cappedProgress) add(n int64) {
	for n > 0 {
		d := c.done.Load()
		m := min(n, c.limit-d)
		if m <= 0 {
			return
		}
		if c.done.CompareAndSwap(d, d+m) {
			c.report(int(m))
			return
		}
	}
}

// fetch returns the block l, starting fetches of the blocks after it.
// It is called from one goroutine.
func (p *prefetcher) fetch(ctx context.Context, l locator.Locator) ([]byte, error) {
	i, ok := p.index[l.Bare().String()]
	if !ok {
		return p.kc.Get(ctx, l, nil)
	}
	f := p.start(i)
	for j := i + 1; j <= i+p.ahead && j < len(p.order); j++ {
		p.start(j)
	}
	// Blocks well behind this one will not be used again (the writer
	// holds at most the previous one): their buffers hold later blocks.
	for j, old := range p.fetches {
		if j < i-1 {
			<-old.done
			delete(p.fetches, j)
			if old.err == nil && cap(old.data) > 0 {
				p.free = append(p.free, old.data[:0])
			}
		}
	}
	select {
	case <-f.done:
		return f.data, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops fetches in progress and waits for them.
func (p *prefetcher) close() {
	p.cancel()
	for _, f := range p.fetches {
		<-f.done
	}
}
