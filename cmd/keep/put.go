package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/keepproject/keep/internal/arvapi"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/registry"
	"github.com/keepproject/keep/transfer"
)

// errPending is what put --dry-run returns when something would be
// stored: exit status 2, as arv-put --dry-run.
var errPending = errors.New("files pending")

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := newFlagSet("put", "PATH...", "Write files and directories to Keep as replicated blocks and print the\nmanifest on stdout. Small files share blocks. A directory's files are\nstored under its base name; '-' reads stdin as a file named 'stdin'.\nSymbolic links are followed; sockets, FIFOs, devices and dangling links\ninside directories are skipped with a warning.", stderr)
	replicas := fset.Int("replicas", 2, "copies of each block to store")
	classes := fset.String("classes", "", "comma-separated storage classes, each needing --replicas copies")
	inflight := fset.Int("blocks-in-flight", 4, "blocks uploaded at once (memory: up to (this + 1) × 64 MiB for blocks packed from several files or read from stdin; a block of one file is sent from the file)")
	noFollow := fset.Bool("no-follow-links", false, "store no symbolic links (by default a link stores what it points to, as arv-put does)")
	var exclude repeated
	fset.Var(&exclude, "exclude", "skip files and directories matching `pattern` (repeatable): '*.tmp' matches names anywhere, 'sub/*.tmp' paths below a directory argument")
	filename := fset.String("filename", "", "store stdin ('-') under `name` instead of 'stdin'")
	dryRun := fset.Bool("dry-run", false, "store nothing: list what would be stored, and exit 2 if that is anything (as arv-put)")
	pdh := fset.Bool("portable-data-hash", false, "print the manifest's portable data hash instead of the manifest")
	storeManifest := fset.Bool("store-manifest", false, "also store the manifest itself as a block, and print its portable data hash, which 'keep get HASH/path' reads")
	name := fset.String("name", "", "record the files as a collection of this `name` in the registry (ARVADOS_API_HOST, ARVADOS_API_TOKEN), wanting --replicas copies, and print its uuid; names are unique among collections not in the trash")
	raw := fset.Bool("raw", false, "print the blocks' locators, comma-separated, instead of a manifest")
	noResume := fset.Bool("no-resume", false, "send every block, even those an interrupted earlier put of the same files stored (the cache is still updated)")
	noCache := fset.Bool("no-cache", false, "neither use nor update the resume cache (in the user cache directory, keep/put)")
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
	case btoi(*pdh)+btoi(*storeManifest)+btoi(*raw) > 1:
		return usageError(fset, "--portable-data-hash, --store-manifest and --raw each choose what to print: give one")
	case *name != "" && (*storeManifest || *raw):
		return usageError(fset, "--name records a collection and prints its uuid (or, with --portable-data-hash, its hash): not with --store-manifest or --raw")
	case flagsSet(fset)["name"]:
		if err := registry.CheckName(*name); err != nil || *name == "" {
			return usageError(fset, "--name: %v", cmp.Or(err, error(errors.New("empty"))))
		}
	}
	var classList []string
	for _, c := range strings.Split(*classes, ",") {
		if c = strings.TrimSpace(c); c != "" {
			classList = append(classList, c)
		}
	}
	inputs, total, err := transfer.CollectInputs(paths, transfer.CollectOptions{
		NoFollowLinks: *noFollow,
		Exclude:       exclude,
		StdinName:     *filename,
		Warn:          func(msg string) { fmt.Fprintln(stderr, "keep put: "+msg) },
	})
	if err != nil {
		return err
	}
	if *dryRun {
		files := 0
		for _, in := range inputs {
			if !in.Dir {
				files++
				fmt.Fprintln(stdout, in.Name)
			}
		}
		fmt.Fprintf(stderr, "keep put: would store %d files, %d bytes\n", files, total)
		if len(inputs) > 0 {
			return errPending
		}
		return nil
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	kc, res, err := cf.newClient(ctx, *replicas, classList, log)
	if err != nil {
		return err
	}
	defer kc.Close()
	var api *arvapi.Client
	if *name != "" {
		// Found out before any upload, not after.
		if api, err = registryClient(res); err != nil {
			return fmt.Errorf("--name: %w", err)
		}
		defer api.Close()
	}

	popts := transfer.PutOptions{BlocksInFlight: *inflight, NoLookup: *noResume}
	if !*noCache {
		path, err := resumeCachePath(paths, *replicas, classList, kc.Services())
		if err == nil {
			popts.Resume, err = transfer.OpenResumeCache(path)
		}
		if err != nil {
			fmt.Fprintf(stderr, "keep put: no resume cache (%v); an interrupted put will start again from the beginning\n", err)
		}
	}
	bar := newProgress(stderr, stdout, false, cf.progressMode(), "put", total)
	popts.Progress = bar.add
	m, failures, err := transfer.Put(ctx, kc, inputs, popts)
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
		return fmt.Errorf("%d block(s) not stored with %d replicas; no manifest written. The blocks that were stored are remembered: run the same command again to send only the rest", len(failures), *replicas)
	}
	if api != nil {
		return recordCollection(ctx, api, m, *name, *replicas, classList, *pdh, stdout, stderr)
	}
	switch {
	case *pdh:
		_, err = fmt.Fprintln(stdout, m.PortableDataHash())
	case *storeManifest:
		var l string
		if l, err = storeText(ctx, kc, m); err == nil {
			_, err = fmt.Fprintln(stdout, l)
		}
	case *raw:
		var locs []string
		for _, b := range m.Blocks() {
			locs = append(locs, b.String())
		}
		_, err = fmt.Fprintln(stdout, strings.Join(locs, ","))
	default:
		_, err = io.WriteString(stdout, m.Text())
	}
	return err
}

// storeText stores m's bare text (no signatures) as a block and returns
// its locator: hash+size, the manifest's portable data hash, with any
// signature the server added.
func storeText(ctx context.Context, kc *keepclient.Client, m *manifest.Manifest) (string, error) {
	text := []byte(m.BareText())
	if len(text) > locator.MaxBlockSize {
		return "", fmt.Errorf("the manifest is %d bytes, more than one block holds; not stored (print it, or its hash, instead)", len(text))
	}
	res, err := kc.Put(ctx, text, keepclient.PutOptions{})
	if err != nil {
		return "", fmt.Errorf("storing the manifest: %w", err)
	}
	return res.Locator.String(), nil
}

// resumeCachePath returns the resume cache for a put of paths at replicas
// in classes to svcs: one file per distinct command, in the user's cache
// directory.
func resumeCachePath(paths []string, replicas int, classes []string, svcs []keepclient.Service) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "path %q\n", abs)
	}
	fmt.Fprintf(h, "replicas %d classes %q\n", replicas, classes)
	urls := make([]string, len(svcs))
	for i, s := range svcs {
		urls[i] = s.URL()
	}
	sort.Strings(urls)
	fmt.Fprintf(h, "services %q\n", urls)
	return filepath.Join(dir, "keep", "put", hex.EncodeToString(h.Sum(nil))+".json"), nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// recordCollection records m in the registry as the collection name,
// wanting replicas copies in classes, and prints its uuid (or portable
// data hash). If the registry refuses, the manifest goes to stdout, so
// that the blocks just stored are not lost to their writer.
func recordCollection(ctx context.Context, api *arvapi.Client, m *manifest.Manifest, name string, replicas int, classes []string, printPDH bool, stdout, stderr io.Writer) error {
	rec, err := api.Create(ctx, arvapi.NewCollection{
		Name: name, ManifestText: m.Text(), ReplicationDesired: &replicas, StorageClassesDesired: classes,
	})
	if err != nil {
		io.WriteString(stdout, m.Text())
		return fmt.Errorf("%w\nThe blocks are stored and the manifest is on stdout: record it again with another name, or keep it", err)
	}
	fmt.Fprintf(stderr, "keep put: recorded collection %s %q, %d copies wanted\n", rec.UUID, rec.Name, replicas)
	out := rec.UUID
	if printPDH {
		out = rec.PortableDataHash
	}
	_, err = fmt.Fprintln(stdout, out)
	return err
}
