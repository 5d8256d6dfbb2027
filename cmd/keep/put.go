package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
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

const putSummary = "Write files and directories to Keep as replicated blocks and print the\nmanifest on stdout. Small files share blocks. A directory's files are\nstored under its base name; '-' reads stdin as a file named 'stdin'.\nSymbolic links are followed; sockets, FIFOs, devices and dangling links\ninside directories are skipped with a warning."

// putFlags is keep put's command line.
type putFlags struct {
	replicas, inflight int
	classes            string
	noFollow, dryRun   bool
	exclude            repeated
	filename           string
	pdh, storeManifest bool
	raw                bool
	name               string
	noResume, noCache  bool
	cf                 clientFlags
}

func (f *putFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.replicas, "replicas", 2, "copies of each block to store")
	fs.StringVar(&f.classes, "classes", "", "comma-separated storage classes, each needing --replicas copies")
	fs.IntVar(&f.inflight, "blocks-in-flight", 4, "blocks uploaded at once (memory: up to (this + 1) × 64 MiB for blocks packed from several files or read from stdin; a block of one file is sent from the file)")
	fs.BoolVar(&f.noFollow, "no-follow-links", false, "store no symbolic links (by default a link stores what it points to, as arv-put does)")
	fs.Var(&f.exclude, "exclude", "skip files and directories matching `pattern` (repeatable): '*.tmp' matches names anywhere, 'sub/*.tmp' paths below a directory argument")
	fs.StringVar(&f.filename, "filename", "", "store stdin ('-') under `name` instead of 'stdin'")
	fs.BoolVar(&f.dryRun, "dry-run", false, "store nothing: list what would be stored, and exit 2 if that is anything (as arv-put)")
	fs.BoolVar(&f.pdh, "portable-data-hash", false, "print the manifest's portable data hash instead of the manifest")
	fs.BoolVar(&f.storeManifest, "store-manifest", false, "also store the manifest itself as a block, and print its portable data hash, which 'keep get HASH/path' reads")
	fs.StringVar(&f.name, "name", "", "record the files as a collection of this `name` in the registry (ARVADOS_API_HOST, ARVADOS_API_TOKEN), wanting --replicas copies, and print its uuid; names are unique among collections not in the trash")
	fs.BoolVar(&f.raw, "raw", false, "print the blocks' locators, comma-separated, instead of a manifest")
	fs.BoolVar(&f.noResume, "no-resume", false, "send every block, even those an interrupted earlier put of the same files stored (the cache is still updated)")
	fs.BoolVar(&f.noCache, "no-cache", false, "neither use nor update the resume cache (in the user cache directory, keep/put)")
	f.cf.register(fs)
}

// check refuses a command line keep put cannot run.
func (f *putFlags) check(fs *flag.FlagSet, paths []string) error {
	switch {
	case len(paths) == 0:
		return usageError(fs, "no PATH to store (use - for stdin)")
	case f.replicas < 1:
		return usageError(fs, "--replicas must be at least 1, not %d", f.replicas)
	case f.inflight < 1:
		return usageError(fs, "--blocks-in-flight must be at least 1, not %d", f.inflight)
	case btoi(f.pdh)+btoi(f.storeManifest)+btoi(f.raw) > 1:
		return usageError(fs, "--portable-data-hash, --store-manifest and --raw each choose what to print: give one")
	case f.name != "" && (f.storeManifest || f.raw):
		return usageError(fs, "--name records a collection and prints its uuid (or, with --portable-data-hash, its hash): not with --store-manifest or --raw")
	case flagsSet(fs)["name"]:
		if err := registry.CheckName(f.name); err != nil || f.name == "" {
			return usageError(fs, "--name: %v", cmp.Or(err, error(errors.New("empty"))))
		}
	}
	return nil
}

// putOptions is what keep put stores and how.
type putOptions struct {
	putFlags
	paths     []string
	classList []string // --classes, split
}

// options returns the options for storing paths.
func (f *putFlags) options(paths []string) *putOptions {
	o := &putOptions{putFlags: *f, paths: paths}
	for _, c := range strings.Split(f.classes, ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.classList = append(o.classList, c)
		}
	}
	return o
}

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("put", "PATH...", putSummary, stderr)
	var f putFlags
	paths, err := parseFlags(fs, &f, args)
	if err != nil {
		return err
	}
	o := f.options(paths)
	inputs, total, err := transfer.CollectInputs(paths, transfer.CollectOptions{
		NoFollowLinks: o.noFollow,
		Exclude:       o.exclude,
		StdinName:     o.filename,
		Warn:          func(msg string) { fmt.Fprintln(stderr, "keep put: "+msg) },
	})
	if err != nil {
		return err
	}
	if o.dryRun {
		return putDryRun(inputs, total, stdout, stderr)
	}
	return o.run(ctx, inputs, total, stdout, stderr)
}

// putDryRun lists the files inputs would store, and returns errPending
// if there are any.
func putDryRun(inputs []transfer.Input, total int64, stdout, stderr io.Writer) error {
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

// run stores inputs, total bytes, and prints what the flags ask for.
func (o *putOptions) run(ctx context.Context, inputs []transfer.Input, total int64, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	kc, res, err := o.cf.newClient(ctx, o.replicas, o.classList, log)
	if err != nil {
		return err
	}
	defer kc.Close()
	var api *arvapi.Client
	if o.name != "" {
		// Found out before any upload, not after.
		if api, err = registryClient(res); err != nil {
			return fmt.Errorf("--name: %w", err)
		}
		defer api.Close()
	}
	popts := o.transferOptions(kc.Services(), stderr)
	bar := newProgress(stderr, stdout, false, o.cf.progressMode(), "put", total)
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
		return fmt.Errorf("%d block(s) not stored with %d replicas; no manifest written. The blocks that were stored are remembered: run the same command again to send only the rest", len(failures), o.replicas)
	}
	if api != nil {
		return recordCollection(ctx, api, m, o.name, o.replicas, o.classList, o.pdh, stdout, stderr)
	}
	return o.print(ctx, kc, m, stdout)
}

// transferOptions returns the options of transfer.Put, with the resume
// cache of this put to svcs unless --no-cache.
func (o *putOptions) transferOptions(svcs []keepclient.Service, stderr io.Writer) transfer.PutOptions {
	popts := transfer.PutOptions{BlocksInFlight: o.inflight, NoLookup: o.noResume}
	if !o.noCache {
		path, err := resumeCachePath(o.paths, o.replicas, o.classList, svcs)
		if err == nil {
			popts.Resume, err = transfer.OpenResumeCache(path)
		}
		if err != nil {
			fmt.Fprintf(stderr, "keep put: no resume cache (%v); an interrupted put will start again from the beginning\n", err)
		}
	}
	return popts
}

// print prints what the flags ask for of m: its portable data hash,
// the locator of m stored as a block, its blocks' locators, or m.
func (o *putOptions) print(ctx context.Context, kc *keepclient.Client, m *manifest.Manifest, stdout io.Writer) error {
	var err error
	switch {
	case o.pdh:
		_, err = fmt.Fprintln(stdout, m.PortableDataHash())
	case o.storeManifest:
		var l string
		if l, err = storeText(ctx, kc, m); err == nil {
			_, err = fmt.Fprintln(stdout, l)
		}
	case o.raw:
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
