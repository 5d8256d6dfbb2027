package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/internal/bytesize"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepfs"
)

const mountSummary = "Mount manifests as a read-only filesystem (FUSE) at MOUNTPOINT, in the\nforeground until Ctrl-C, SIGTERM or 'umount MOUNTPOINT', which leave nothing\nmounted. Each source is a manifest file, a collection of the registry, a\nmanifest stored in Keep (HASH or HASH/PATH, HASH being what 'keep put\n--store-manifest' printed), or a directory of manifest files (each shown as\na directory of its name). One source is mounted at MOUNTPOINT itself;\nseveral each under its base name. Listing and stat answer from the\nmanifests alone; reads fetch blocks, verified, through a memory cache (and\n--disk-cache). A block that cannot be read is EIO to the reader and one\nlog line naming the block and the servers. See docs/mount.md."

// mountFlags is keep mount's command line.
type mountFlags struct {
	cache, diskCacheSize string
	diskCache            string
	readahead            int
	debug                bool
	cf                   clientFlags
}

func (f *mountFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cache, "cache", "256MiB", "keep up to `size` of blocks in memory (suffixes as 64M, 1GiB, 2GB)")
	fs.StringVar(&f.diskCache, "disk-cache", "", "also keep blocks in `dir`, across mounts; each is verified again when read back")
	fs.StringVar(&f.diskCacheSize, "disk-cache-size", "10GiB", "most `size` of blocks kept in --disk-cache")
	fs.IntVar(&f.readahead, "readahead", keepfs.DefaultReadahead, "blocks fetched ahead of a sequential reader (0: none)")
	fs.BoolVar(&f.debug, "debug", false, "log every FUSE request")
	f.cf.register(fs)
}

// check refuses a command line keep mount cannot run.
func (f *mountFlags) check(fs *flag.FlagSet, pos []string) error {
	switch {
	case len(pos) < 2:
		return usageError(fs, "want one or more sources and a MOUNTPOINT, not %d arguments", len(pos))
	case f.readahead < 0:
		return usageError(fs, "--readahead must be 0 or more, not %d", f.readahead)
	}
	for _, s := range []string{f.cache, f.diskCacheSize} {
		if _, err := bytesize.Parse(s); err != nil {
			return usageError(fs, "%v", err)
		}
	}
	return nil
}

func runMount(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mount", "MANIFEST|COLLECTION|HASH[/PATH]|DIR... MOUNTPOINT", mountSummary, stderr)
	var f mountFlags
	pos, err := parseFlags(fs, &f, args)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	kc, res, err := f.cf.newClient(ctx, 1, nil, log)
	if err != nil {
		return err
	}
	defer kc.Close()
	srcs, mountpoint := pos[:len(pos)-1], pos[len(pos)-1]
	// Parsing leaves garbage many times the tree's size: collected
	// often while the tree is built, and given back before the mount
	// starts its life, it never makes the mount's RSS.
	gc := debug.SetGCPercent(20)
	tree, err := mountTree(ctx, kc, res, srcs)
	debug.SetGCPercent(gc)
	if err != nil {
		return withUnreachableHint(ctx, err, res, kc)
	}
	debug.FreeOSMemory()
	cache, _ := bytesize.Parse(f.cache)
	diskSize, _ := bytesize.Parse(f.diskCacheSize)
	readahead := f.readahead
	if readahead == 0 {
		readahead = -1 // none; keepfs reads 0 as its default
	}
	mnt, err := keepfs.New(mountpoint, tree, keepfs.Options{Client: kc, CacheSize: max(cache, 1), Readahead: readahead,
		DiskCache: f.diskCache, DiskCacheSize: max(diskSize, 1), Logger: log, Debug: f.debug})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "keep mount: %d files, %d bytes, mounted at %s; Ctrl-C or 'umount %s' ends it\n", tree.Files(), tree.Size(), mountpoint, mountpoint)
	select {
	case <-ctx.Done():
		return mnt.Unmount()
	case <-mnt.Done():
		return nil
	}
}

// mountTree reads the manifests srcs name into a tree: one at its root,
// several each under its base name.
func mountTree(ctx context.Context, kc *keepclient.Client, res *discovery.Resolver, srcs []string) (*keepfs.Tree, error) {
	var b keepfs.TreeBuilder
	names := map[string]string{}
	for _, src := range srcs {
		prefix := ""
		if len(srcs) > 1 {
			prefix = path.Base(strings.TrimRight(filepath.ToSlash(src), "/"))
			if other, ok := names[prefix]; ok {
				return nil, fmt.Errorf("%s and %s would both be %s in the mount", other, src, prefix)
			}
			names[prefix] = src
		}
		if err := addSource(ctx, &b, kc, res, src, prefix); err != nil {
			return nil, err
		}
	}
	return b.Tree()
}

// addSource adds the manifests src names under prefix.
func addSource(ctx context.Context, b *keepfs.TreeBuilder, kc *keepclient.Client, res *discovery.Resolver, src, prefix string) error {
	info, err := os.Stat(src)
	if err == nil && !info.IsDir() {
		return addManifestFile(b, src, prefix)
	}
	if err != nil {
		m, err := target(ctx, kc, res, src)
		if err != nil {
			return err
		}
		if err := b.Add(prefix, m); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		return nil
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		return addManifestFile(b, p, path.Join(prefix, filepath.ToSlash(rel)))
	})
}

// addManifestFile adds the manifest file at p under prefix, parsed a
// stream at a time (keepfs.TreeBuilder.AddText). An empty file is an
// error, as readManifest says.
func addManifestFile(b *keepfs.TreeBuilder, p, prefix string) error {
	text, err := readText(p)
	if err != nil {
		return err
	}
	if strings.TrimSpace(text) == "" {
		_, err := readManifest(p) // its error for an empty file
		return err
	}
	if err := b.AddText(prefix, text); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// readText reads the file at p as a string, without the copy that
// string(os.ReadFile(p)) makes: a manifest may be large.
func readText(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var sb strings.Builder
	if info, err := f.Stat(); err == nil {
		sb.Grow(int(info.Size()))
	}
	if _, err := io.Copy(&sb, f); err != nil {
		return "", err
	}
	return sb.String(), nil
}
