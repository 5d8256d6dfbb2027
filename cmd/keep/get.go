package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("get", "LOCATOR|MANIFEST_FILE", "Read a block, or every file of a manifest, back from Keep. Every block is\nverified against its hash. Without -o, a block or a one-file manifest goes\nto stdout; with -o, a one-file manifest goes to that file (unless it is a\ndirectory) and a larger one into that directory. Existing files are never\nreplaced unless -f says so; with any in the way, nothing is written.", stderr)
	out := fs.String("o", "", "output `path`; a trailing slash or an existing directory means a directory, created if need be")
	force := fs.Bool("f", false, "overwrite files that already exist")
	skip := fs.Bool("skip-existing", false, "leave files that already exist as they are")
	ahead := fs.Int("blocks-in-flight", 4, "blocks fetched ahead of the one being written")
	var cf clientFlags
	cf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return usageError(fs, "want one LOCATOR or MANIFEST_FILE, not %d arguments", len(pos))
	case *ahead < 0:
		return usageError(fs, "--blocks-in-flight must be 0 or more, not %d", *ahead)
	case *force && *skip:
		return usageError(fs, "-f and --skip-existing contradict each other")
	}
	arg := pos[0]
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	kc, res, err := cf.newClient(ctx, 1, nil, log)
	if err != nil {
		return err
	}
	defer kc.Close()

	var m *manifest.Manifest
	if loc, lerr := locator.Parse(arg); lerr == nil {
		// A single block, as a one-file manifest named after its hash.
		if loc.Size < 0 {
			size, err := kc.Head(ctx, loc)
			if err != nil {
				return err
			}
			loc.Size = size
		}
		m = &manifest.Manifest{Files: []manifest.File{{Path: loc.Hash, Segments: []manifest.Segment{{Block: loc, Length: loc.Size}}}}}
	} else {
		if _, err := os.Stat(arg); err != nil {
			return fmt.Errorf("%s is neither a locator (%v) nor a readable manifest file: %w", arg, lerr, err)
		}
		if m, err = readManifest(arg); err != nil {
			return err
		}
	}
	var total int64
	for _, f := range m.Files {
		total += f.Size()
	}
	bar := newProgress(stderr, "get", total)
	err = transfer.Get(ctx, kc, m, *out, stdout, transfer.GetOptions{BlocksAhead: *ahead, Progress: bar.add, Overwrite: *force, SkipExisting: *skip})
	bar.done(err != nil)
	if err != nil {
		if hint := unreachableHint(ctx, res, kc.Services()); hint != "" {
			return fmt.Errorf("%w\n%s", err, hint)
		}
	}
	return err
}
