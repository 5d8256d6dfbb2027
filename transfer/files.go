package transfer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// putFiles stores inputs whose sizes are all known: the blocks are laid
// out from the sizes alone (layout), so blocks an earlier put stored can
// be skipped without reading them, and each block is read straight from
// the files that make it up.
func putFiles(ctx context.Context, kc *keepclient.Client, inputs []Input, opts PutOptions) (*manifest.Manifest, []string, error) {
	bs := int64(opts.BlockSize)
	sizes := make([]int64, len(inputs))
	for i, in := range inputs {
		if !in.Dir {
			sizes[i] = in.Size
		}
	}
	blocks, segs := layout(sizes, bs)
	// Check the names before reading anything: a clash found at the end
	// would waste the whole upload.
	dummy := make([]locator.Locator, len(blocks))
	for i, b := range blocks {
		dummy[i] = locator.Locator{Hash: locator.EmptyHash, Size: b.size}
	}
	if err := buildManifest(inputs, segs, dummy).Validate(); err != nil {
		return nil, nil, err
	}

	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan job)
	pool := newBufferPool(opts.BlockSize, opts.BlocksInFlight+1)
	u := &uploads{kc: kc, opts: opts, release: pool.put}
	u.locs = make([]locator.Locator, len(blocks))
	u.start(g, gctx, jobs, opts.BlocksInFlight)
	g.Go(func() error {
		defer close(jobs)
		r := &blockReader{inputs: inputs}
		defer r.close()
		for i, b := range blocks {
			var key string
			if opts.Resume != nil {
				key = blockKey(inputs, b, bs)
				if l, ok := resumable(gctx, kc, opts, key, b.size); ok {
					u.set(i, l)
					opts.Progress(int(b.size))
					continue
				}
			}
			if len(b.pieces) == 1 {
				// One file's range: the upload reads it from the file.
				p := b.pieces[0]
				j := job{index: i, file: &fileRange{src: inputs[p.input].Src, off: p.offset, size: p.length}, key: key}
				select {
				case jobs <- j:
					continue
				case <-gctx.Done():
					return context.Cause(gctx)
				}
			}
			buf, err := pool.get(gctx)
			if err != nil {
				return err
			}
			data, sum, err := r.read(b, buf)
			if err != nil {
				pool.put(buf)
				return err
			}
			select {
			case jobs <- job{index: i, data: data, hash: sum, key: key}:
			case <-gctx.Done():
				pool.put(buf)
				return context.Cause(gctx)
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if lines := u.shortLines(func(b int) string { return blockFiles(inputs, blocks[b]) }); lines != nil {
		return nil, lines, nil
	}
	m := buildManifest(inputs, segs, u.locs)
	return m, nil, m.Validate()
}

// resumable returns the locator the cache has for a block, if a server
// still has it.
func resumable(ctx context.Context, kc *keepclient.Client, opts PutOptions, key string, size int64) (locator.Locator, bool) {
	if opts.NoLookup {
		return locator.Locator{}, false
	}
	l, ok := opts.Resume.lookup(key)
	if !ok || l.Size != size {
		return locator.Locator{}, false
	}
	if _, err := kc.Head(ctx, l); err != nil {
		return locator.Locator{}, false
	}
	return l, true
}

// buildManifest assembles the manifest of inputs laid out as segs, with
// locs the locators of the blocks.
func buildManifest(inputs []Input, segs [][]placed, locs []locator.Locator) *manifest.Manifest {
	m := &manifest.Manifest{}
	for k, in := range inputs {
		if in.Dir {
			m.Dirs = append(m.Dirs, in.Name)
			continue
		}
		f := manifest.File{Path: in.Name}
		for _, s := range segs[k] {
			f.Segments = append(f.Segments, manifest.Segment{Block: locs[s.block], Offset: s.offset, Length: s.length})
		}
		m.Files = append(m.Files, f)
	}
	return m
}

// blockReader reads blocks from the files of a layout, keeping the file
// it read last open, and hashes each block as it reads it, in chunks that
// are still in the CPU cache.
type blockReader struct {
	inputs []Input
	cur    int // input whose file is open, or -1
	f      *os.File
}

func (r *blockReader) read(b span, buf []byte) ([]byte, string, error) {
	buf = buf[:b.size]
	h := md5.New()
	pos := int64(0)
	for _, p := range b.pieces {
		f, err := r.open(p.input)
		if err != nil {
			return nil, "", err
		}
		if err := readHashed(h, f, r.inputs[p.input].Src, buf[pos:pos+p.length], p.offset); err != nil {
			return nil, "", err
		}
		pos += p.length
	}
	return buf, hex.EncodeToString(h.Sum(nil)), nil
}

// readFull fills p from f (the file at path) at off.
func readFull(f *os.File, path string, p []byte, off int64) error {
	got, err := f.ReadAt(p, off)
	if got < len(p) {
		if err == io.EOF {
			return fmt.Errorf("%s is shorter than when the put started; it changed while being stored", path)
		}
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return nil
}

func (r *blockReader) open(i int) (*os.File, error) {
	if r.f != nil && r.cur == i {
		return r.f, nil
	}
	r.close()
	f, err := os.Open(r.inputs[i].Src)
	if err != nil {
		return nil, err
	}
	r.f, r.cur = f, i
	return f, nil
}

func (r *blockReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// bufferPool hands out at most n block buffers, allocating them as
// needed, and takes them back.
type bufferPool struct {
	size  int
	slots chan struct{} // one per buffer that may exist
	free  chan []byte
}

func newBufferPool(size, n int) *bufferPool {
	return &bufferPool{size: size, slots: make(chan struct{}, n), free: make(chan []byte, n)}
}

// get returns a free buffer, a new one if fewer than n exist, or waits
// for one to be put back.
func (p *bufferPool) get(ctx context.Context) ([]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	default:
	}
	select {
	case b := <-p.free:
		return b, nil
	case p.slots <- struct{}{}:
		return make([]byte, p.size), nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (p *bufferPool) put(b []byte) { p.free <- b[:cap(b)] }

// blockFiles names the files a block holds part of, for messages: up to
// three, then how many more.
func blockFiles(inputs []Input, b span) string {
	var names []string
	for _, p := range b.pieces {
		if n := inputs[p.input].Name; len(names) == 0 || names[len(names)-1] != n {
			names = append(names, n)
		}
	}
	what := "part of " + strings.Join(names[:min(len(names), 3)], ", ")
	if len(names) > 3 {
		what += fmt.Sprintf(" and %d more files", len(names)-3)
	}
	return what
}
