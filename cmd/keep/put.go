package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/keepproject/keep/transfer"
)

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("put", "PATH...", "Write files and directories to Keep as replicated blocks and print the\nmanifest on stdout. Small files share blocks. A directory's files are\nstored under its base name; '-' reads stdin as a file named 'stdin'.", stderr)
	replicas := fset.Int("replicas", 2, "copies of each block to store")
	classes := fset.String("classes", "", "comma-separated storage classes, each needing --replicas copies")
	inflight := fset.Int("blocks-in-flight", 4, "blocks uploaded at once (memory: about (this + 1) × 64 MiB)")
	noFollow := fset.Bool("no-follow-links", false, "store no symbolic links (by default a link stores what it points to, as arv-put does)")
	var cf clientFlags
	cf.register(fset)
	paths, err := parse(fset, args)
	if err != nil {
		return err
	}
	switch {
	case len(paths) == 0:
		return usageError(fset, "no PATH to store (use - for stdin)")
	case *replicas < 1:
		return usageError(fset, "--replicas must be at least 1, not %d", *replicas)
	case *inflight < 1:
		return usageError(fset, "--blocks-in-flight must be at least 1, not %d", *inflight)
	}
	var classList []string
	for _, c := range strings.Split(*classes, ",") {
		if c = strings.TrimSpace(c); c != "" {
			classList = append(classList, c)
		}
	}
	inputs, total, err := transfer.CollectInputs(paths, transfer.CollectOptions{
		NoFollowLinks: *noFollow,
		Warn:          func(msg string) { fmt.Fprintln(stderr, "keep put: "+msg) },
	})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	kc, res, err := cf.newClient(ctx, *replicas, classList, log)
	if err != nil {
		return err
	}
	defer kc.Close()

	bar := newProgress(stderr, "put", total)
	m, failures, err := transfer.Put(ctx, kc, inputs, transfer.PutOptions{BlocksInFlight: *inflight, Progress: bar.add})
	bar.done(err != nil || len(failures) > 0)
	if err != nil {
		return err
	}
	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Fprintln(stderr, f)
		}
		if hint := unreachableHint(ctx, res, kc.Services()); hint != "" {
			fmt.Fprintln(stderr, hint)
		}
		return fmt.Errorf("%d block(s) not stored with %d replicas; no manifest written", len(failures), *replicas)
	}
	_, err = io.WriteString(stdout, m.Text())
	return err
}
