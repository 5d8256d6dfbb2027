package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/keepproject/keep/balance"
	"github.com/keepproject/keep/internal/arvconfig"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepstore"
)

const balanceSummary = "Bring every block the manifests reference to the wanted number of copies\nin its probe-order places: work out the pull and trash lists for every\nserver (as Arvados keep-balance does) and, with --commit, send them.\nWithout --commit nothing is sent.\n\nBlocks no manifest references are garbage-collected only when the live set\nis known to be whole: with --collections (every collection of the API\nserver), or with --gc (the MANIFEST and DIR arguments are every manifest\nthere is). Otherwise they are counted and kept: the blocks of a manifest\nleft out would be trashed.\n\nSafety: a referenced block never loses its last copy or goes below the\nwanted count; extra copies are trashed only once the wanted ones are in\ntheir places; nothing younger than --signing-ttl is trashed; and no trash\nis sent at all when any server's index could not be read whole."

// balanceFlags is keep balance's command line.
type balanceFlags struct {
	af                    adminFlags
	commit, wait, gc      bool
	ttl                   time.Duration
	configFile, clusterID string
}

func (f *balanceFlags) register(fs *flag.FlagSet) {
	f.af.register(fs)
	fs.BoolVar(&f.commit, "commit", false, "send the pull and trash lists (default: only show them)")
	fs.BoolVar(&f.wait, "wait", false, "with --commit: wait until the servers have worked their pull lists, report each pull that failed, and exit non-zero if any did")
	fs.BoolVar(&f.gc, "gc", false, "the MANIFEST and DIR arguments are the whole live set: trash every block none of them references (once older than the signing TTL). Without it such blocks are kept, as a manifest left out would lose its blocks. Not with --collections, which reads the whole live set and always collects")
	fs.DurationVar(&f.ttl, "signing-ttl", keepstore.DefaultSigningTTL, "the servers' signature lifetime (Collections.BlobSigningTTL): copies younger than this are never trashed (default: from --config, else 336h)")
	fs.StringVar(&f.configFile, "config", "", "read the signing TTL from the servers' Arvados cluster configuration `file` (Collections.BlobSigningTTL), as keep server --config does")
	fs.StringVar(&f.clusterID, "cluster", "", "the cluster `id` to use when the --config file configures several")
}

// check refuses a command line keep balance cannot run.
func (f *balanceFlags) check(fs *flag.FlagSet, paths []string) error {
	if err := f.af.checkPaths(fs, paths); err != nil {
		return err
	}
	switch {
	case f.gc && f.af.collections:
		return usageError(fs, "--gc is for MANIFEST and DIR arguments: with --collections the live set is every collection, and blocks none references are always collected")
	case f.wait && !f.commit:
		return usageError(fs, "--wait needs --commit: without it nothing is sent to wait for")
	}
	return nil
}

func runBalance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("balance", "MANIFEST|DIR... [--gc] | --collections", balanceSummary, stderr)
	var f balanceFlags
	paths, err := parseFlags(fs, &f, args)
	if err != nil {
		return err
	}
	// Only a live set known to be whole may make garbage of what it
	// does not name.
	keepUnreferenced := !f.af.collections && !f.gc
	signingTTL, ttlFrom, err := balanceTTL(fs, f.ttl, f.configFile, f.clusterID)
	if err != nil {
		return err
	}
	stop, err := f.af.profile()
	if err != nil {
		return err
	}
	defer stop()
	start := time.Now()
	inv, client, ferr := f.af.inventory(ctx, paths, stderr)
	if inv == nil {
		return ferr
	}
	if ferr != nil {
		fmt.Fprintf(stderr, "keep balance: %v\n", ferr)
	}
	p, err := balance.Compute(inv, balance.Options{Now: start, SigningTTL: signingTTL, KeepUnreferenced: keepUnreferenced})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d servers, %d blocks referenced, %d stored\n", len(inv.Servers), inv.Referenced(), inv.Stored())
	fmt.Fprintf(stdout, "signing TTL %v (%s): copies younger than that are not trashed\n", signingTTL, ttlFrom)
	printSummary(stdout, p, balance.OK, balance.Under, balance.Lost, balance.Over, balance.Misplaced, balance.Unreferenced)
	fmt.Fprintln(stdout)
	garbage := p.Summary[balance.Unreferenced]
	switch {
	case keepUnreferenced:
		fmt.Fprintf(stdout, "%d unreferenced blocks kept: manifest files are not known to be the whole live set (--gc says they are; --collections reads every collection)\n", garbage.Blocks)
	case f.gc:
		fmt.Fprintf(stdout, "WARNING: --gc: the manifests given are taken as the whole live set: every block none of them references is trashed once older than the signing TTL (%d unreferenced blocks, %d bytes, now)\n", garbage.Blocks, garbage.Bytes)
	}
	return f.send(ctx, client, inv, p, stdout, stderr)
}

// send lists the pulls and trash of plan p for each server of inv and
// what became of the last run's pulls, and with --commit sends the
// lists (with --wait, waiting for the pulls).
func (f *balanceFlags) send(ctx context.Context, client *balance.Client, inv *balance.Inventory, p *balance.Plan, stdout, stderr io.Writer) error {
	pulls, trash := 0, 0
	var svcs []keepclient.Service // the servers with lists
	for i, s := range inv.Servers {
		if !p.HasLists(i) {
			continue
		}
		svcs = append(svcs, s.Service)
		pulls += p.PullCount(i)
		trash += p.TrashCount(i)
		fmt.Fprintf(stdout, "%s: pull %d, trash %d\n", s.Service, p.PullCount(i), p.TrashCount(i))
	}
	if p.TrashWithheld {
		fmt.Fprintln(stdout, "no trash lists: some index could not be read whole")
	}
	// What became of the last run's pulls: read before new lists
	// replace them.
	short := balance.StillShort(p, client.PullReports(ctx, svcs))
	for _, s := range short {
		fmt.Fprintf(stdout, "still short: %s: the last pull to %s failed: %s\n", s.Locator, s.Server, s.Error)
	}
	var failed error
	if len(short) > 0 {
		failed = fmt.Errorf("%d blocks are still short because a pull to them failed (listed above)", len(short))
	}
	if !f.commit {
		fmt.Fprintf(stdout, "dry run: %d pulls and %d trash items not sent (--commit sends them)\n", pulls, trash)
		return failed
	}
	if err := client.Send(ctx, p); err != nil {
		return fmt.Errorf("sending the lists: %w", err)
	}
	fmt.Fprintf(stdout, "sent %d pulls and %d trash items\n", pulls, trash)
	if f.wait && pulls > 0 {
		if err := waitPulls(ctx, client, svcs, stdout, stderr); err != nil {
			return err
		}
	}
	return failed
}

// waitPulls waits until every server has worked its pull list, then
// lists the pulls that failed; it fails if any did.
func waitPulls(ctx context.Context, c *balance.Client, svcs []keepclient.Service, stdout, stderr io.Writer) error {
	var last time.Time
	reports, err := c.WaitPulls(ctx, svcs, func(queued, working int) {
		if now := time.Now(); now.Sub(last) >= 10*time.Second {
			fmt.Fprintf(stderr, "keep balance: waiting for the pulls: %d queued, %d in progress\n", queued, working)
			last = now
		}
	})
	if err != nil {
		return err
	}
	n, unknown := 0, 0
	for _, r := range reports {
		if r.Err != nil {
			unknown++
			continue
		}
		for _, f := range r.Failures {
			fmt.Fprintf(stdout, "pull failed: %s to %s: %s\n", f.Locator, r.Service, f.Error)
		}
		if more := r.Failed - len(r.Failures); more > 0 {
			fmt.Fprintf(stdout, "%s: %d more pulls failed\n", r.Service, more)
		}
		n += max(r.Failed, len(r.Failures))
	}
	if unknown > 0 {
		fmt.Fprintf(stdout, "%d servers do not report on their pull lists (GET /pull): their pulls are not known\n", unknown)
	}
	if n > 0 {
		return fmt.Errorf("%d pulls failed (listed above)", n)
	}
	fmt.Fprintln(stdout, "every pull was worked and none failed")
	return nil
}

// balanceTTL returns the signing TTL balance uses and where it came
// from: --signing-ttl if given, else the --config file's
// Collections.BlobSigningTTL, else the servers' default.
func balanceTTL(fs *flag.FlagSet, flagTTL time.Duration, configFile, clusterID string) (time.Duration, string, error) {
	set := flagsSet(fs)
	switch {
	case set["cluster"] && configFile == "":
		return 0, "", usageError(fs, "--cluster needs --config")
	case flagTTL <= 0:
		return 0, "", usageError(fs, "--signing-ttl must be positive")
	case set["signing-ttl"]:
		return flagTTL, "--signing-ttl", nil
	case configFile != "":
		c, err := arvconfig.ReadFile(configFile, clusterID)
		if err != nil {
			return 0, "", fmt.Errorf("--config %s: %w", configFile, err)
		}
		if c.Collections.BlobSigningTTL > 0 {
			return time.Duration(c.Collections.BlobSigningTTL), "Collections.BlobSigningTTL in " + configFile, nil
		}
		return flagTTL, "the default; " + configFile + " does not set Collections.BlobSigningTTL", nil
	}
	return flagTTL, "the default; give --config or --signing-ttl if the servers use another", nil
}
