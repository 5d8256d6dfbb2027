package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

const getSummary = "Read a block, a manifest's files, a collection of the registry (by name,\nuuid or portable data hash, its manifest signed afresh; ARVADOS_API_HOST\nand ARVADOS_API_TOKEN name the registry), or part of a manifest stored in\nKeep (HASH/PATH, HASH being what 'keep put --store-manifest' printed),\nback from Keep. Every block is verified against its hash. Without -o, a block or a\none-file manifest goes to stdout; with -o, a one-file manifest goes to that\nfile (unless it is a directory) and a larger one into that directory.\nExisting files are never replaced unless -f says so; with any in the way,\nnothing is written."

// getFlags is keep get's command line.
type getFlags struct {
	out                   string
	force, skip           bool
	ahead                 int
	md5sum, printManifest bool
	strip                 bool
	cf                    clientFlags
}

func (f *getFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.out, "o", "", "output `path`; a trailing slash or an existing directory means a directory, created if need be")
	fs.BoolVar(&f.force, "f", false, "overwrite files that already exist")
	fs.BoolVar(&f.skip, "skip-existing", false, "leave files that already exist as they are")
	fs.IntVar(&f.ahead, "blocks-in-flight", 4, "blocks fetched ahead of the one being written")
	fs.BoolVar(&f.md5sum, "md5sum", false, "print each file's MD5 on stderr as it is written (as arv-get)")
	fs.BoolVar(&f.printManifest, "manifest", false, "print the manifest (of HASH/PATH: of that part) instead of the files")
	fs.BoolVar(&f.strip, "strip-manifest", false, "with --manifest: without permission signatures")
	f.cf.register(fs)
}

// check refuses a command line keep get cannot run.
func (f *getFlags) check(fs *flag.FlagSet, pos []string) error {
	switch {
	case len(pos) != 1:
		return usageError(fs, "want one LOCATOR, MANIFEST_FILE or HASH/PATH, not %d arguments", len(pos))
	case f.ahead < 0:
		return usageError(fs, "--blocks-in-flight must be 0 or more, not %d", f.ahead)
	case f.force && f.skip:
		return usageError(fs, "-f and --skip-existing contradict each other")
	case f.strip && !f.printManifest:
		return usageError(fs, "--strip-manifest goes with --manifest")
	}
	return nil
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", "LOCATOR|MANIFEST_FILE|COLLECTION[/PATH]|HASH/[PATH]", getSummary, stderr)
	var f getFlags
	pos, err := parseFlags(fs, &f, args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	kc, res, err := f.cf.newClient(ctx, 1, nil, log)
	if err != nil {
		return err
	}
	defer kc.Close()
	m, err := target(ctx, kc, res, pos[0])
	if err != nil {
		return withUnreachableHint(ctx, err, res, kc)
	}
	if f.printManifest {
		text := m.Text()
		if f.strip {
			text = m.BareText()
		}
		_, err := io.WriteString(stdout, text)
		return err
	}
	return withUnreachableHint(ctx, f.write(ctx, kc, m, stdout, stderr), res, kc)
}

// withUnreachableHint adds to err, unless it is a file in the way, the
// hint that none of kc's services accepts connections, if so.
func withUnreachableHint(ctx context.Context, err error, res *discovery.Resolver, kc *keepclient.Client) error {
	if err != nil && !errors.As(err, new(*transfer.ExistsError)) {
		if hint := unreachableHint(ctx, res, kc.Services()); hint != "" {
			return fmt.Errorf("%w\n%s", err, hint)
		}
	}
	return err
}

// write writes m's files, read with kc, where the flags say.
func (f *getFlags) write(ctx context.Context, kc *keepclient.Client, m *manifest.Manifest, stdout, stderr io.Writer) error {
	var total int64
	for _, file := range m.Files {
		total += file.Size()
	}
	opts := transfer.GetOptions{BlocksAhead: f.ahead, Overwrite: f.force, SkipExisting: f.skip}
	if f.md5sum {
		opts.MD5 = func(path, sum string) { fmt.Fprintf(stderr, "%s  %s\n", sum, path) }
	}
	bar := newProgress(stderr, stdout, f.out == "" || f.out == "-", f.cf.progressMode(), "get", total)
	opts.Progress = bar.add
	err := transfer.Get(ctx, kc, m, f.out, stdout, opts)
	bar.done(err != nil)
	return err
}

// target returns the manifest arg names: a block (as a one-file manifest
// named after its hash), a manifest stored in Keep and a path in it
// ("HASH+SIZE/dir/file", "HASH+SIZE/" for all of it), or a manifest file.
func target(ctx context.Context, kc *keepclient.Client, res *discovery.Resolver, arg string) (*manifest.Manifest, error) {
	if loc, err := locator.Parse(arg); err == nil {
		if loc.Size < 0 {
			size, err := kc.Head(ctx, loc)
			if err != nil {
				return nil, err
			}
			loc.Size = size
		}
		return &manifest.Manifest{Files: []manifest.File{{Path: loc.Hash, Segments: []manifest.Segment{{Block: loc, Length: loc.Size}}}}}, nil
	}
	if _, err := os.Stat(arg); err == nil {
		return readManifest(arg)
	}
	m, ok, err := resolveCollection(ctx, res, arg)
	if err != nil || ok {
		return m, err
	}
	// A hash the registry does not know, or no registry: a manifest
	// stored as a block by put --store-manifest.
	first, rest, _ := strings.Cut(arg, "/")
	loc, err := locator.Parse(first)
	if err != nil {
		return nil, err
	}
	return storedManifest(ctx, kc, loc, rest)
}

// storedManifest reads the manifest stored as block loc and returns the
// part of it at path.
func storedManifest(ctx context.Context, kc *keepclient.Client, loc locator.Locator, path string) (*manifest.Manifest, error) {
	text, err := kc.Get(ctx, loc, nil)
	if err != nil {
		return nil, fmt.Errorf("reading the manifest %s: %w", loc.Bare(), err)
	}
	m, err := manifest.Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("block %s is not a manifest: %w", loc.Bare(), err)
	}
	return m.Subset(path)
}
