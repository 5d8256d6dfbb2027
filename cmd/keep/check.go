package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keepproject/keep/balance"
	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/internal/arvapi"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// adminFlags are the flags of commands that read the servers' indexes.
type adminFlags struct {
	services    string
	tokenFile   string
	replicas    int
	collections bool
}

func (f *adminFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&f.services, "services", "", "keep_services/accessible JSON `file` (default: as for put and get)")
	fs.StringVar(&f.tokenFile, "system-token-file", "", "read the servers' system token (SystemRootToken) from `file` (default: ARVADOS_API_TOKEN, then KEEP_TOKEN)")
	fs.IntVar(&f.replicas, "replicas", 2, "copies wanted of every block the manifests reference (with --collections: of collections whose replication_desired is unset)")
	fs.BoolVar(&f.collections, "collections", false, "the manifests are every collection of the Arvados API server (ARVADOS_API_HOST, read with ARVADOS_API_TOKEN), those in the trash until deleted and old versions included, each wanting its replication_desired copies")
}

// checkPaths checks the positional arguments against --collections,
// and --replicas.
func (f *adminFlags) checkPaths(flags *flag.FlagSet, paths []string) error {
	switch {
	case f.replicas < 1:
		// Wanting no copies of referenced blocks would make them garbage.
		return usageError(flags, "--replicas must be at least 1, not %d", f.replicas)
	case f.collections && len(paths) > 0:
		return usageError(flags, "--collections takes no MANIFEST or DIR: the live set is the API server's collections")
	case !f.collections && len(paths) == 0:
		return usageError(flags, "no MANIFEST or DIR (or --collections): the live set would be empty")
	}
	return nil
}

// inventory reads the live set (from paths, or the API server's
// collections) and every server's index.
func (f *adminFlags) inventory(ctx context.Context, paths []string, stderr io.Writer) (balance.Inventory, balance.Want, *balance.Client, error) {
	res := discovery.New(discovery.Config{ServicesFile: f.services})
	var want balance.Want
	var err error
	if f.collections {
		want, err = f.collectionSet(ctx, res, stderr)
	} else {
		want, err = liveSet(paths, f.replicas)
	}
	if err != nil {
		return balance.Inventory{}, nil, nil, err
	}
	svcs, err := res.Services(ctx)
	if err != nil {
		return balance.Inventory{}, nil, nil, err
	}
	token := res.KeepToken()
	if f.tokenFile != "" {
		if token, err = readSecret(f.tokenFile); err != nil {
			return balance.Inventory{}, nil, nil, fmt.Errorf("--system-token-file: %w", err)
		}
	}
	var disks []keepclient.Service
	for _, s := range svcs {
		if s.IsDisk() {
			disks = append(disks, s)
		}
	}
	if len(disks) == 0 {
		return balance.Inventory{}, nil, nil, fmt.Errorf("no block servers (disk services) in %s", res.Source())
	}
	c := &balance.Client{Token: token}
	fmt.Fprintf(stderr, "keep: reading the indexes of %d servers\n", len(disks))
	start := time.Now()
	inv, err := c.Fetch(ctx, disks)
	copies := 0
	for _, cs := range inv.Copies {
		copies += len(cs)
	}
	fmt.Fprintf(stderr, "keep: %d copies of %d blocks listed in %v\n", copies, len(inv.Copies), time.Since(start).Round(time.Millisecond))
	for _, w := range inv.Warnings {
		fmt.Fprintf(stderr, "keep: warning: %v (read through another server instead)\n", w)
	}
	return inv, want, c, err
}

// collectionSet reads the live set from the API server's collections.
func (f *adminFlags) collectionSet(ctx context.Context, res *discovery.Resolver, stderr io.Writer) (balance.Want, error) {
	if res.APIHost() == "" || res.Token() == "" {
		return nil, errors.New("--collections needs ARVADOS_API_HOST and ARVADOS_API_TOKEN")
	}
	api := arvapi.New(res.APIHost(), res.Token(), res.Insecure())
	defer api.Close()
	want := balance.Want{}
	n := 0
	err := api.Collections(ctx, func(c arvapi.Collection) error {
		m, err := manifest.Parse(c.ManifestText)
		if err != nil {
			return fmt.Errorf("collection %s: %w", c.UUID, err)
		}
		replicas := f.replicas
		if c.ReplicationDesired != nil {
			replicas = *c.ReplicationDesired
		}
		addBlocks(want, m, replicas)
		if n++; n%1000 == 0 {
			fmt.Fprintf(stderr, "keep: read %d collections (%d blocks)\n", n, len(want))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "keep: live set: %d collections, %d blocks\n", n, len(want))
	return want, nil
}

// addBlocks adds m's blocks to want, wanting at least replicas copies.
func addBlocks(want balance.Want, m *manifest.Manifest, replicas int) {
	for _, l := range m.Blocks() {
		if l.Size == 0 && l.Hash == locator.EmptyHash {
			continue // no server needs to hold the empty block
		}
		w := want[l.Hash]
		want[l.Hash] = balance.Wanted{Size: l.Size, Replicas: max(w.Replicas, replicas)}
	}
}

// liveSet reads the manifests named by paths (files, or directories
// searched for them) and wants replicas copies of every block they use.
func liveSet(paths []string, replicas int) (balance.Want, error) {
	want := balance.Want{}
	add := func(path string) error {
		m, err := readManifest(path)
		if err != nil {
			return err
		}
		addBlocks(want, m, replicas)
		return nil
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			if err := add(p); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return err
			}
			return add(path)
		})
		if err != nil {
			return nil, err
		}
	}
	return want, nil
}

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", "MANIFEST|DIR... | --collections", "For every block of the manifests, show which servers hold it (from their\nindexes, read with the system token) against the wanted count, and sum up.\nExits non-zero when any block is under-replicated or lost.", stderr)
	var af adminFlags
	af.register(fs)
	paths, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := af.checkPaths(fs, paths); err != nil {
		return err
	}
	inv, want, _, err := af.inventory(ctx, paths, stderr)
	if err != nil && inv.Servers == nil {
		return err
	}
	if err != nil {
		fmt.Fprintf(stderr, "keep check: some indexes could not be read whole; copies may be missing from the table: %v\n", err)
	}
	p, cerr := balance.Compute(inv, want, balance.Options{})
	if cerr != nil {
		return cerr
	}
	hashes := make([]string, 0, len(want))
	for h := range want {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	fmt.Fprintf(stdout, "%-44s %6s %6s  %-16s %s\n", "block", "wanted", "copies", "state", "volumes")
	listing := volumeServers(inv)
	for _, h := range hashes {
		loc := locator.Locator{Hash: h, Size: want[h].Size}
		st := p.Blocks[h]
		fmt.Fprintf(stdout, "%-44s %6d %6d  %-16s %s\n", loc, want[h].Replicas, st.Replicas, st.Class, strings.Join(volumeHolders(inv, listing, h), " "))
	}
	printSummary(stdout, p, balance.OK, balance.Under, balance.Lost, balance.Over, balance.Misplaced)
	if n := p.Summary[balance.Under].Blocks + p.Summary[balance.Lost].Blocks; n > 0 {
		return fmt.Errorf("%d of %d blocks have fewer than the wanted copies (%d lost)", n, len(want), p.Summary[balance.Lost].Blocks)
	}
	if err != nil {
		return errors.New("some indexes could not be read whole")
	}
	return nil
}

// volumeHolders describes the volumes holding a block, each once, as
// "uuid@server,server" (the servers that list it), or the server alone
// for one read through GET /index. listing maps each mount uuid to the
// servers that list it (see volumeServers).
func volumeHolders(inv balance.Inventory, listing map[string][]string, hash string) []string {
	var out []string
	seen := map[string]bool{}
	for _, c := range inv.Copies[hash] {
		switch {
		case c.Mount == "":
			out = append(out, inv.Servers[c.Server].Service.String())
		case !seen[c.Mount]:
			seen[c.Mount] = true
			out = append(out, c.Mount+"@"+strings.Join(listing[c.Mount], ","))
		}
	}
	return out
}

// volumeServers maps each mount uuid to the servers that list it.
func volumeServers(inv balance.Inventory) map[string][]string {
	out := map[string][]string{}
	for _, s := range inv.Servers {
		for _, m := range s.Mounts {
			if !slices.Contains(out[m.UUID], s.Service.String()) {
				out[m.UUID] = append(out[m.UUID], s.Service.String())
			}
		}
	}
	return out
}

func printSummary(w io.Writer, p *balance.Plan, classes ...balance.Class) {
	fmt.Fprintln(w)
	for _, c := range classes {
		t := p.Summary[c]
		fmt.Fprintf(w, "%-17s %8d blocks %14d bytes\n", c.String()+":", t.Blocks, t.Bytes)
	}
}
