package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	// Progress, if set, is called with the size of each block written
	// (with all its replicas or not), from several goroutines at once.
	Progress func(n int)
	// Report, if set, is called with each block's write result.
	Report func(index int, res *keepclient.PutResult)
	// BlockSize is the size of full blocks; 0 means 64 MiB, the most
	// Keep allows. Smaller blocks are for tests.
	BlockSize int
}

// Put packs inputs into blocks (small files share blocks) and writes them
// with kc, several blocks at once. It returns the manifest, or, when
// some blocks fell short of their replicas, no manifest and a one-line
// reason per such block.
func Put(ctx context.Context, kc *keepclient.Client, inputs []Input, opts PutOptions) (*manifest.Manifest, []string, error) {
	inflight, progress, report := opts.BlocksInFlight, opts.Progress, opts.Report
	if inflight <= 0 {
		inflight = 4
	}
	if progress == nil {
		progress = func(int) {}
	}
	g, gctx := errgroup.WithContext(ctx)
	type job struct {
		index int
		data  []byte
		hash  string // MD5 computed while reading, or "" if unknown
	}
	jobs := make(chan job)
	var (
		mu       sync.Mutex // guards locs and failures
		locs     []locator.Locator
		failures []failure
	)
	var packer *manifest.Packer
	for i := 0; i < inflight; i++ {
		g.Go(func() error {
			for j := range jobs {
				res, err := kc.Put(gctx, j.data, keepclient.PutOptions{Hash: j.hash})
				n := len(j.data)
				packer.Release(j.data)
				var ire *keepclient.InsufficientReplicasError
				switch {
				case errors.As(err, &ire):
					mu.Lock()
					failures = append(failures, failure{j.index, fmt.Sprintf("block %d: %v", j.index, err)})
					mu.Unlock()
				case err != nil:
					return fmt.Errorf("block %d: %w", j.index, err)
				}
				mu.Lock()
				for len(locs) <= j.index {
					locs = append(locs, locator.Locator{})
				}
				if res != nil {
					locs[j.index] = res.Locator
				}
				if report != nil && res != nil {
					report(j.index, res)
				}
				mu.Unlock()
				progress(n)
			}
			return nil
		})
	}
	blockSize := opts.BlockSize
	if blockSize <= 0 {
		blockSize = locator.MaxBlockSize
	}
	hasher := newStreamHasher(blockSize)
	packer = manifest.NewPacker(blockSize, func(ctx context.Context, index int, data []byte) error {
		select {
		case jobs <- job{index, data, hasher.sum(index, len(data))}:
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
	if len(failures) > 0 {
		sort.Slice(failures, func(i, j int) bool { return failures[i].index < failures[j].index })
		lines := make([]string, len(failures))
		for i, f := range failures {
			lines[i] = f.line
		}
		return nil, lines, nil
	}
	m, err := packer.Manifest(locs)
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
