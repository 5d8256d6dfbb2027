package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("put", "PATH...", "Write files and directories to Keep as replicated blocks and print the\nmanifest on stdout. Small files share blocks. A directory's files are\nstored under its base name; '-' reads stdin as a file named 'stdin'.", stderr)
	replicas := fset.Int("replicas", 2, "copies of each block to store")
	classes := fset.String("classes", "", "comma-separated storage classes, each needing --replicas copies")
	inflight := fset.Int("blocks-in-flight", 4, "blocks uploaded at once (memory: about (this + 1) × 64 MiB)")
	var cf clientFlags
	cf.register(fset)
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() == 0 || *replicas < 1 || *inflight < 1 {
		fset.Usage()
		return errUsage
	}
	var classList []string
	for _, c := range strings.Split(*classes, ",") {
		if c = strings.TrimSpace(c); c != "" {
			classList = append(classList, c)
		}
	}
	inputs, total, err := collectInputs(fset.Args())
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	kc, _, err := cf.newClient(ctx, *replicas, classList, log)
	if err != nil {
		return err
	}
	defer kc.Close()

	bar := newProgress(stderr, "put", total)
	m, failures, err := putFiles(ctx, kc, inputs, *inflight, bar.add)
	bar.done(err != nil || len(failures) > 0)
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Fprintln(stderr, f)
		}
		return fmt.Errorf("%d block(s) not stored with %d replicas; no manifest written", len(failures), *replicas)
	}
	_, err = io.WriteString(stdout, m.Text())
	return err
}

// input is one file to store: where to read it and its name in the manifest.
type input struct {
	src  string // path on disk, or "-" for stdin
	name string // path in the manifest
	dir  bool   // an (empty) directory entry
}

// collectInputs expands the command-line paths into files, in a stable
// order, and sums their sizes for the progress bar.
func collectInputs(paths []string) ([]input, int64, error) {
	var out []input
	var total int64
	for _, p := range paths {
		if p == "-" {
			out = append(out, input{src: "-", name: "stdin"})
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, 0, err
		}
		base := filepath.Base(filepath.Clean(p))
		if !info.IsDir() {
			out = append(out, input{src: p, name: base})
			total += info.Size()
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(p, path)
			name := filepath.ToSlash(filepath.Join(base, rel))
			switch {
			case d.IsDir():
				out = append(out, input{src: path, name: name, dir: true})
			case d.Type().IsRegular():
				info, err := d.Info()
				if err != nil {
					return err
				}
				total += info.Size()
				out = append(out, input{src: path, name: name})
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// putFiles packs inputs into blocks and uploads up to inflight blocks at
// once. It returns the manifest, or a one-line reason per block that fell
// short.
func putFiles(ctx context.Context, kc *keepclient.Client, inputs []input, inflight int, progress func(int)) (*manifest.Manifest, []string, error) {
	g, gctx := errgroup.WithContext(ctx)
	type job struct {
		index int
		data  []byte
	}
	jobs := make(chan job)
	var (
		mu       sync.Mutex // guards locs and failures
		locs     []locator.Locator
		failures []string
	)
	var packer *manifest.Packer
	for i := 0; i < inflight; i++ {
		g.Go(func() error {
			for j := range jobs {
				res, err := kc.Put(gctx, j.data, keepclient.PutOptions{})
				n := len(j.data)
				packer.Release(j.data)
				var ire *keepclient.InsufficientReplicasError
				switch {
				case errors.As(err, &ire):
					mu.Lock()
					failures = append(failures, fmt.Sprintf("block %d: %v", j.index, err))
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
				mu.Unlock()
				progress(n)
			}
			return nil
		})
	}
	packer = manifest.NewPacker(0, func(ctx context.Context, index int, data []byte) error {
		select {
		case jobs <- job{index, data}:
			return nil
		case <-gctx.Done():
			return context.Cause(gctx)
		}
	})
	g.Go(func() error {
		defer close(jobs)
		for _, in := range inputs {
			if err := addInput(gctx, packer, in); err != nil {
				return err
			}
		}
		return packer.Close(gctx)
	})
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if len(failures) > 0 {
		return nil, failures, nil
	}
	m, err := packer.Manifest(locs)
	return m, nil, err
}

func addInput(ctx context.Context, p *manifest.Packer, in input) error {
	if in.dir {
		return p.AddDir(in.name)
	}
	var r io.Reader = os.Stdin
	if in.src != "-" {
		f, err := os.Open(in.src)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if err := p.AddFile(ctx, in.name, r); err != nil {
		return fmt.Errorf("%s: %w", in.src, err)
	}
	return nil
}
