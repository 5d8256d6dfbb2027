package transfer

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// failure is a block that fell short, with its one-line reason.
type failure struct {
	index int
	line  string
}

// PutOptions adjust Put.
type PutOptions struct {
	// BlocksInFlight is the number of blocks uploaded at once. Default 4.
	BlocksInFlight int
	// Progress, if set, is called as blocks are sent, with the bytes sent
	// (averaged over the replicas; see keepclient.PutOptions.Progress),
	// and with the size of each block found in Resume, from several
	// goroutines at once.
	Progress func(n int)
	// Report, if set, is called with each block's write result.
	Report func(index int, res *keepclient.PutResult)
	// BlockSize is the size of full blocks; 0 means 64 MiB, the most
	// Keep allows. Smaller blocks are for tests.
	BlockSize int
	// Resume, if set, skips blocks an earlier put stored (still found on
	// a server), without reading them, and records each block stored.
	// It works when every input is a file or directory (not stdin).
	Resume *ResumeCache
	// NoLookup, with Resume, records blocks without skipping any.
	NoLookup bool
}

// job is one block to upload: data in memory, or a range of one file.
type job struct {
	index int
	data  []byte
	file  *fileRange // the block is this range of a file; data is nil
	hash  string     // MD5 computed while reading, or "" if unknown
	key   string     // its resume cache key, or ""
}

// fileRange is a block that is one file's bytes [off, off+size).
type fileRange struct {
	src  string
	off  int64
	size int64
}

// uploads runs the workers that store blocks, collecting their locators
// and the blocks that fell short.
type uploads struct {
	kc      *keepclient.Client
	opts    PutOptions
	release func([]byte)

	mu       sync.Mutex // guards locs and failures
	locs     []locator.Locator
	failures []failure
}

func (u *uploads) start(g *errgroup.Group, ctx context.Context, jobs <-chan job, n int) {
	for i := 0; i < n; i++ {
		g.Go(func() error {
			var scratch []byte // for hashing file ranges
			for j := range jobs {
				if j.file != nil && scratch == nil {
					scratch = make([]byte, hashChunk)
				}
				if err := u.store(ctx, j, scratch); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// putFile hashes the file range, reading it through scratch in chunks
// that stay in the CPU cache, and stores it with keepclient.PutFile, so
// that the block is never held in memory.
func (u *uploads) putFile(ctx context.Context, r *fileRange, scratch []byte) (*keepclient.PutResult, error) {
	f, err := os.Open(r.src)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := md5.New()
	for off := int64(0); off < r.size; {
		chunk := scratch[:min(r.size-off, int64(len(scratch)))]
		if err := readHashed(h, f, r.src, chunk, r.off+off); err != nil {
			return nil, err
		}
		off += int64(len(chunk))
	}
	return u.kc.PutFile(ctx, f, r.off, int(r.size), keepclient.PutOptions{Hash: hex.EncodeToString(h.Sum(nil)), Progress: u.opts.Progress})
}

func (u *uploads) store(ctx context.Context, j job, scratch []byte) error {
	var res *keepclient.PutResult
	var err error
	if j.file != nil {
		res, err = u.putFile(ctx, j.file, scratch)
	} else {
		res, err = u.kc.Put(ctx, j.data, keepclient.PutOptions{Hash: j.hash, Progress: u.opts.Progress})
		u.release(j.data)
	}
	var ire *keepclient.InsufficientReplicasError
	switch {
	case errors.As(err, &ire):
		u.mu.Lock()
		u.failures = append(u.failures, failure{j.index, fmt.Sprintf("block %d: %v", j.index, err)})
		u.mu.Unlock()
	case err != nil:
		return fmt.Errorf("block %d: %w", j.index, err)
	}
	if res != nil {
		u.set(j.index, res.Locator)
		if u.opts.Report != nil {
			u.mu.Lock()
			u.opts.Report(j.index, res)
			u.mu.Unlock()
		}
		if err == nil && j.key != "" && u.opts.Resume != nil {
			if err := u.opts.Resume.record(j.key, res.Locator); err != nil {
				return fmt.Errorf("saving the resume cache: %w", err)
			}
		}
	}
	return nil
}

func (u *uploads) set(i int, l locator.Locator) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(u.locs) <= i {
		u.locs = append(u.locs, locator.Locator{})
	}
	u.locs[i] = l
}

// shortLines returns one line per block that fell short, in block order,
// each followed by what the block holds when files is not nil.
func (u *uploads) shortLines(files func(block int) string) []string {
	if len(u.failures) == 0 {
		return nil
	}
	sort.Slice(u.failures, func(i, j int) bool { return u.failures[i].index < u.failures[j].index })
	lines := make([]string, len(u.failures))
	for i, f := range u.failures {
		lines[i] = f.line
		if files != nil {
			lines[i] += " (" + files(f.index) + ")"
		}
	}
	return lines
}

// Put packs inputs into blocks (small files share blocks) and writes them
// with kc, several blocks at once. It returns the manifest, or, when
// some blocks fell short of their replicas, no manifest and a one-line
// reason per such block.
func Put(ctx context.Context, kc *keepclient.Client, inputs []Input, opts PutOptions) (*manifest.Manifest, []string, error) {
	if opts.BlocksInFlight <= 0 {
		opts.BlocksInFlight = 4
	}
	if opts.Progress == nil {
		opts.Progress = func(int) {}
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = locator.MaxBlockSize
	}
	inputs = slices.Clone(inputs)
	for i, in := range inputs {
		switch {
		case in.Dir:
		case in.Src == "-" || in.Size < 0:
			return putStream(ctx, kc, inputs, opts)
		case in.ModTime.IsZero():
			// Not from CollectInputs: find the size now.
			info, err := os.Stat(in.Src)
			if err != nil {
				return nil, nil, err
			}
			if !info.Mode().IsRegular() {
				return nil, nil, fmt.Errorf("%s is not a regular file", in.Src)
			}
			inputs[i].Size, inputs[i].ModTime = info.Size(), info.ModTime()
		}
	}
	return putFiles(ctx, kc, inputs, opts)
}

// putStream packs inputs as they are read, for inputs whose size is not
// known in advance (stdin).
func putStream(ctx context.Context, kc *keepclient.Client, inputs []Input, opts PutOptions) (*manifest.Manifest, []string, error) {
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan job)
	var packer *manifest.Packer
	u := &uploads{kc: kc, opts: opts, release: func(b []byte) { packer.Release(b) }}
	u.start(g, gctx, jobs, opts.BlocksInFlight)
	hasher := newStreamHasher(opts.BlockSize)
	packer = manifest.NewPacker(opts.BlockSize, func(ctx context.Context, index int, data []byte) error {
		select {
		case jobs <- job{index: index, data: data, hash: hasher.sum(index, len(data))}:
			return nil
		case <-gctx.Done():
			return context.Cause(gctx)
		}
	})
	g.Go(func() error {
		defer close(jobs)
		for _, in := range inputs {
			if err := addInput(gctx, packer, in, hasher.reader); err != nil {
				return err
			}
		}
		return packer.Close(gctx)
	})
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if lines := u.shortLines(nil); lines != nil {
		return nil, lines, nil
	}
	m, err := packer.Manifest(u.locs)
	return m, nil, err
}

func addInput(ctx context.Context, p *manifest.Packer, in Input, wrap func(io.Reader) io.Reader) error {
	if in.Dir {
		return p.AddDir(in.Name)
	}
	var r io.Reader = os.Stdin
	if in.Src != "-" {
		f, err := os.Open(in.Src)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if err := p.AddFile(ctx, in.Name, wrap(r)); err != nil {
		return fmt.Errorf("%s: %w", in.Src, err)
	}
	return nil
}
