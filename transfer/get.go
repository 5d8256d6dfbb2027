package transfer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
}

// Get writes the manifest's files: with out "" or "-", its only file to
// stdout; with out naming anything but a directory, its only file there;
// otherwise every file under the directory out. Each file is written to a
// temporary name and renamed into place when complete, so an interrupted
// Get leaves no partial file under a real name.
func Get(ctx context.Context, kc *keepclient.Client, m *manifest.Manifest, out string, stdout io.Writer, opts GetOptions) error {
	ahead, progress := opts.BlocksAhead, opts.Progress
	if ahead < 0 {
		ahead = 4
	}
	if progress == nil {
		progress = func(int) {}
	}
	pf := newPrefetcher(kc, m, ahead)
	defer pf.close()
	fetch := pf.fetch
	if out == "" || out == "-" {
		if len(m.Files) != 1 {
			return fmt.Errorf("the manifest has %d files; give -o DIR to write them", len(m.Files))
		}
		return manifest.WriteFile(ctx, m.Files[0], fetch, &countingWriter{w: stdout, add: progress})
	}
	if info, err := os.Stat(out); len(m.Files) == 1 && (err != nil || !info.IsDir()) {
		return writeOne(ctx, m.Files[0], fetch, out, progress)
	}
	for _, f := range m.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			return fmt.Errorf("manifest path %q escapes %s", f.Path, out)
		}
		dst := filepath.Join(out, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := writeOne(ctx, f, fetch, dst, progress); err != nil {
			return err
		}
	}
	for _, d := range m.Dirs {
		if err := os.MkdirAll(filepath.Join(out, filepath.FromSlash(d)), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func writeOne(ctx context.Context, f manifest.File, fetch manifest.FetchFunc, dst string, progress func(int)) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".keep-get-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := manifest.WriteFile(ctx, f, fetch, &countingWriter{w: tmp, add: progress}); err != nil {
		tmp.Close()
		return fmt.Errorf("%s: %w", f.Path, err)
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

type countingWriter struct {
	w   io.Writer
	add func(int)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.add(n)
	return n, err
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
}

type blockFetch struct {
	done chan struct{}
	data []byte
	err  error
}

func newPrefetcher(kc *keepclient.Client, m *manifest.Manifest, ahead int) *prefetcher {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prefetcher{kc: kc, order: m.Blocks(), index: make(map[string]int), ahead: ahead, ctx: ctx, cancel: cancel, fetches: make(map[int]*blockFetch)}
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
	go func() {
		defer close(f.done)
		f.data, f.err = p.kc.Get(p.ctx, p.order[i], buf)
	}()
	return f
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
