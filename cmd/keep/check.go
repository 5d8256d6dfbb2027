package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
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
	cpuProfile  string
}

func (f *adminFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&f.services, "services", "", "keep_services/accessible JSON `file` (default: as for put and get)")
	fs.StringVar(&f.tokenFile, "system-token-file", "", "read the servers' system token (SystemRootToken) from `file` (default: ARVADOS_API_TOKEN, then KEEP_TOKEN)")
	fs.IntVar(&f.replicas, "replicas", 2, "copies wanted of every block the manifests reference (with --collections: of collections whose replication_desired is unset)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file` (for reporting a slow run)")
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

// profile starts the CPU profile --cpuprofile asks for, and returns
// what stops it.
func (f *adminFlags) profile() (stop func(), err error) {
	if f.cpuProfile == "" {
		return func() {}, nil
	}
	file, err := os.Create(f.cpuProfile)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(file); err != nil {
		file.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		file.Close()
	}, nil
}

// inventory reads the live set (from paths, or the API server's
// collections) and every server's index. Its error with a nil inventory
// is fatal; with one, some indexes could not be read whole.
func (f *adminFlags) inventory(ctx context.Context, paths []string, stderr io.Writer) (*balance.Inventory, *balance.Client, error) {
	res := discovery.New(discovery.Config{ServicesFile: f.services})
	inv := balance.NewInventory()
	var err error
	if f.collections {
		err = f.collectionSet(ctx, res, inv, stderr)
	} else {
		err = liveSet(inv, paths, f.replicas)
	}
	if err != nil {
		return nil, nil, err
	}
	svcs, err := res.Services(ctx)
	if err != nil {
		return nil, nil, err
	}
	token := res.KeepToken()
	if f.tokenFile != "" {
		if token, err = readSecret(f.tokenFile); err != nil {
			return nil, nil, fmt.Errorf("--system-token-file: %w", err)
		}
	}
	var disks []keepclient.Service
	for _, s := range svcs {
		if s.IsDisk() {
			disks = append(disks, s)
		}
	}
	if len(disks) == 0 {
		return nil, nil, fmt.Errorf("no block servers (disk services) in %s", res.Source())
	}
	c := &balance.Client{Token: token}
	fmt.Fprintf(stderr, "keep: reading the indexes of %d servers\n", len(disks))
	start := time.Now()
	err = c.Fetch(ctx, inv, disks)
	fmt.Fprintf(stderr, "keep: %d copies of %d blocks listed in %v\n", inv.CopyCount(), inv.Stored(), time.Since(start).Round(time.Millisecond))
	for _, w := range inv.Warnings {
		fmt.Fprintf(stderr, "keep: warning: %v (read through another server instead)\n", w)
	}
	return inv, c, err
}

// collectionSet reads the live set from the API server's collections.
func (f *adminFlags) collectionSet(ctx context.Context, res *discovery.Resolver, inv *balance.Inventory, stderr io.Writer) error {
	if res.APIHost() == "" || res.Token() == "" {
		return errors.New("--collections needs ARVADOS_API_HOST and ARVADOS_API_TOKEN")
	}
	api := arvapi.New(res.APIHost(), res.Token(), res.Insecure())
	defer api.Close()
	n := 0
	err := api.Collections(ctx, func(c arvapi.Collection) error {
		replicas := f.replicas
		if c.ReplicationDesired != nil {
			replicas = *c.ReplicationDesired
		}
		if err := addBlocks(inv, strings.NewReader(c.ManifestText), replicas); err != nil {
			return fmt.Errorf("collection %s: %w", c.UUID, err)
		}
		if n++; n%1000 == 0 {
			fmt.Fprintf(stderr, "keep: read %d collections (%d blocks)\n", n, inv.Referenced())
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "keep: live set: %d collections, %d blocks\n", n, inv.Referenced())
	return nil
}

// addBlocks adds the blocks of the manifest text r reads to the live
// set, each wanting at least replicas copies.
func addBlocks(inv *balance.Inventory, r io.Reader, replicas int) error {
	return manifest.ScanBlocks(r, func(l locator.Locator) error {
		if l.Size == 0 && l.Hash == locator.EmptyHash {
			return nil // no server needs to hold the empty block
		}
		return inv.Want(l.Hash, l.Size, replicas)
	})
}

// liveSet reads the manifests named by paths (files, or directories
// searched for them) into inv, wanting replicas copies of every block
// they use.
func liveSet(inv *balance.Inventory, paths []string, replicas int) error {
	add := func(path string) error {
		file, err := os.Open(path)
		if err != nil {
			return err
		}
		defer file.Close()
		if info, err := file.Stat(); err == nil && info.Size() == 0 {
			return fmt.Errorf("%s is empty, not a manifest (a failed 'keep put > %s' leaves an empty file)", path, path)
		}
		if err := addBlocks(inv, file, replicas); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !info.IsDir() {
			if err := add(p); err != nil {
				return err
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
			return err
		}
	}
	return nil
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
	stop, err := af.profile()
	if err != nil {
		return err
	}
	defer stop()
	inv, _, err := af.inventory(ctx, paths, stderr)
	if inv == nil {
		return err
	}
	if err != nil {
		fmt.Fprintf(stderr, "keep check: some indexes could not be read whole; copies may be missing from the table: %v\n", err)
	}
	p, cerr := balance.Compute(inv, balance.Options{})
	if cerr != nil {
		return cerr
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	fmt.Fprintf(out, "%-44s %6s %6s  %-16s %s\n", "block", "wanted", "copies", "state", "volumes")
	listing := volumeServers(inv)
	var line []byte
	for b := range p.Blocks() {
		if !b.Referenced {
			continue
		}
		line = appendCheckLine(line[:0], inv, listing, b)
		if _, err := out.Write(line); err != nil {
			return err
		}
	}
	printSummary(out, p, balance.OK, balance.Under, balance.Lost, balance.Over, balance.Misplaced)
	if err := out.Flush(); err != nil {
		return err
	}
	if n := p.Summary[balance.Under].Blocks + p.Summary[balance.Lost].Blocks; n > 0 {
		return fmt.Errorf("%d of %d blocks have fewer than the wanted copies (%d lost)", n, inv.Referenced(), p.Summary[balance.Lost].Blocks)
	}
	if err != nil {
		return errors.New("some indexes could not be read whole")
	}
	return nil
}

// appendCheckLine appends keep check's line for block b: its locator,
// the copies wanted and held, its state, and the volumes holding it,
// each once, as "uuid@server,server" (the servers that list it), or the
// server alone for one read through GET /index. listing maps each mount
// uuid to the servers that list it (see volumeServers). It is written
// out by hand, as it runs for every block.
func appendCheckLine(line []byte, inv *balance.Inventory, listing map[string]string, b balance.BlockInfo) []byte {
	pad := func(line []byte, n int) []byte {
		for ; n > 0; n-- {
			line = append(line, ' ')
		}
		return line
	}
	start := len(line)
	line = append(append(append(line, b.Hash...), '+'), strconv.FormatInt(b.Size, 10)...)
	line = pad(line, 44-(len(line)-start))
	for _, n := range []int{b.Wanted, b.Replicas} {
		num := strconv.Itoa(n)
		line = append(pad(append(line, ' '), 6-len(num)), num...)
	}
	class := b.Class.String()
	line = pad(append(append(line, "  "...), class...), 16-len(class))
	line = append(line, ' ')
	for i, c := range b.Copies {
		if i > 0 {
			line = append(line, ' ')
		}
		if c.Mount == "" {
			line = append(line, inv.Servers[c.Server].Service.String()...)
		} else {
			line = append(append(append(line, c.Mount...), '@'), listing[c.Mount]...)
		}
	}
	return append(line, '\n')
}

// volumeServers maps each mount uuid to the servers that list it,
// joined by commas.
func volumeServers(inv *balance.Inventory) map[string]string {
	servers := map[string][]string{}
	for _, s := range inv.Servers {
		for _, m := range s.Mounts {
			if !slices.Contains(servers[m.UUID], s.Service.String()) {
				servers[m.UUID] = append(servers[m.UUID], s.Service.String())
			}
		}
	}
	out := make(map[string]string, len(servers))
	for u, list := range servers {
		out[u] = strings.Join(list, ",")
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
