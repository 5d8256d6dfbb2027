package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/keepproject/keep/balance"
	"github.com/keepproject/keep/keepstore"
)

func runBalance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("balance", "MANIFEST|DIR... | --collections", "Bring every block the manifests reference to the wanted number of copies\nin its probe-order places, and garbage-collect blocks none references: work\nout the pull and trash lists for every server (as Arvados keep-balance does)\nand, with --commit, send them. Without --commit nothing is sent.\n\nSafety: a referenced block never loses its last copy or goes below the\nwanted count; extra copies are trashed only once the wanted ones are in\ntheir places; nothing younger than --signing-ttl is trashed; and no trash\nis sent at all when any server's index could not be read whole.", stderr)
	var af adminFlags
	af.register(fs)
	commit := fs.Bool("commit", false, "send the pull and trash lists (default: only show them)")
	ttl := fs.Duration("signing-ttl", keepstore.DefaultSigningTTL, "the servers' signature lifetime (Collections.BlobSigningTTL): copies younger than this are never trashed (default: from --config, else 336h)")
	configFile := fs.String("config", "", "read the signing TTL from the servers' Arvados cluster configuration `file` (Collections.BlobSigningTTL), as keep server --config does")
	clusterID := fs.String("cluster", "", "the cluster `id` to use when the --config file configures several")
	paths, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := af.checkPaths(fs, paths); err != nil {
		return err
	}
	signingTTL, ttlFrom, err := balanceTTL(fs, *ttl, *configFile, *clusterID)
	if err != nil {
		return err
	}
	start := time.Now()
	inv, want, client, ferr := af.inventory(ctx, paths, stderr)
	if ferr != nil && inv.Servers == nil {
		return ferr
	}
	if ferr != nil {
		fmt.Fprintf(stderr, "keep balance: %v\n", ferr)
	}
	p, err := balance.Compute(inv, want, balance.Options{Now: start, SigningTTL: signingTTL})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d servers, %d blocks referenced, %d stored\n", len(inv.Servers), len(want), len(inv.Copies))
	fmt.Fprintf(stdout, "signing TTL %v (%s): copies younger than that are not trashed\n", signingTTL, ttlFrom)
	printSummary(stdout, p, balance.OK, balance.Under, balance.Lost, balance.Over, balance.Misplaced, balance.Unreferenced)
	fmt.Fprintln(stdout)
	pulls, trash := 0, 0
	for _, s := range inv.Servers {
		u := s.Service.URL()
		if _, ok := p.Pulls[u]; !ok {
			continue
		}
		pulls += len(p.Pulls[u])
		trash += len(p.Trash[u])
		fmt.Fprintf(stdout, "%s: pull %d, trash %d\n", s.Service, len(p.Pulls[u]), len(p.Trash[u]))
	}
	if p.TrashWithheld {
		fmt.Fprintln(stdout, "no trash lists: some index could not be read whole")
	}
	if !*commit {
		fmt.Fprintf(stdout, "dry run: %d pulls and %d trash items not sent (--commit sends them)\n", pulls, trash)
		return nil
	}
	if err := client.Send(ctx, p); err != nil {
		return fmt.Errorf("sending the lists: %w", err)
	}
	fmt.Fprintf(stdout, "sent %d pulls and %d trash items\n", pulls, trash)
	return nil
}

// balanceTTL returns the signing TTL balance uses and where it came
// from: --signing-ttl if given, else the --config file's
// Collections.BlobSigningTTL, else the servers' default.
func balanceTTL(fs *flag.FlagSet, flagTTL time.Duration, configFile, clusterID string) (time.Duration, string, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["cluster"] && configFile == "":
		return 0, "", usageError(fs, "--cluster needs --config")
	case flagTTL <= 0:
		return 0, "", usageError(fs, "--signing-ttl must be positive")
	case set["signing-ttl"]:
		return flagTTL, "--signing-ttl", nil
	case configFile != "":
		c, err := loadArvadosConfig(configFile, clusterID)
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
