package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/keepproject/keep/keepclient"

	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/internal/bytesize"
	"github.com/keepproject/keep/internal/s3local"
	"github.com/keepproject/keep/localcluster"
)

// upFlags is keep up's command line.
type upFlags struct {
	dir      string
	servers  int
	proxy    bool
	capacity string
	verbose  bool
	useS3    bool
	s3Bin    string
}

func (f *upFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "dir", defaultUpDir(), "`directory` for the servers' data")
	fs.IntVar(&f.servers, "servers", 4, "number of block servers")
	fs.BoolVar(&f.proxy, "proxy", false, "also run a proxy; its services file is DIR/proxy-services.json")
	fs.StringVar(&f.capacity, "capacity", "", "per-server volume limit in `bytes`, as for 'keep server' (suffixes K, M, G, T = powers of 1024; KB, MB, GB, TB = powers of 1000); default none")
	fs.BoolVar(&f.verbose, "v", false, "log every request")
	fs.BoolVar(&f.useS3, "s3", false, "keep the blocks in a local S3 server (versitygw, started in DIR/s3) rather than in directories: a bucket per server")
	fs.StringVar(&f.s3Bin, "s3-server", "", "with --s3: the versitygw `binary` (default: $KEEP_TEST_S3_SERVER, versitygw on PATH, or ~/.cache/keep-ci/bin/versitygw)")
}

// options checks the command line and returns the cluster to start,
// logging to stderr.
func (f *upFlags) options(fs *flag.FlagSet, pos []string, stderr io.Writer) (localcluster.Config, error) {
	switch {
	case len(pos) != 0:
		return localcluster.Config{}, usageError(fs, "takes no arguments, not %q", pos)
	case f.servers < 1:
		return localcluster.Config{}, usageError(fs, "--servers must be at least 1, not %d", f.servers)
	}
	var capBytes int64
	if f.capacity != "" {
		n, err := bytesize.Parse(f.capacity)
		if err != nil {
			return localcluster.Config{}, usageError(fs, "--capacity: %v", err)
		}
		capBytes = n
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return localcluster.Config{Dir: f.dir, Servers: f.servers, Proxy: f.proxy, Capacity: capBytes, Logger: log}, nil
}

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def, _ := discovery.DefaultServicesFile()
	fs := newFlagSet("up", "", "Run a local cluster in the foreground until interrupted: block servers\n(and a proxy with --proxy) on loopback, data under --dir. Writes\nDIR/services.json and the default services file "+def+",\nwhich put and get use when nothing else is configured.", stderr)
	var f upFlags
	f.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	lc, err := f.options(fs, pos, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(lc.Dir, 0o755); err != nil {
		return err
	}
	tokenFile := filepath.Join(lc.Dir, "system-token")
	if lc.SystemToken, err = systemToken(tokenFile); err != nil {
		return err
	}
	if f.useS3 {
		stop, err := upS3(&lc, f.s3Bin, stdout)
		if err != nil {
			return err
		}
		defer stop()
	}
	c, err := localcluster.Start(ctx, lc)
	if err != nil {
		return err
	}
	defer c.Close()
	return runCluster(ctx, c, lc.Dir, def, tokenFile, stdout, stderr)
}

// upS3 starts a local S3 server in lc.Dir/s3 and has lc's servers keep
// their blocks in its buckets, one each; the function returned stops it.
func upS3(lc *localcluster.Config, s3Bin string, stdout io.Writer) (stop func(), err error) {
	s3srv, err := s3local.Start(s3Bin, filepath.Join(lc.Dir, "s3"))
	if err != nil {
		return nil, err
	}
	lc.Volume = func(i int, _ string) (string, error) {
		bucket := fmt.Sprint("server-", i)
		if err := s3srv.NewBucket(bucket); err != nil && !errors.Is(err, iofs.ErrExist) {
			return "", err
		}
		return s3srv.VolumeURL(bucket), nil
	}
	fmt.Fprintf(stdout, "keep up: S3 server on %s, buckets in %s\n", s3srv.Socket, s3srv.Root)
	return s3srv.Stop, nil
}

// runCluster writes the services files of c, whose data is in dir, to
// dir and to def (the default services file, unless "" or another
// cluster's that is running), shows how to use it, and waits for ctx
// to end.
func runCluster(ctx context.Context, c *localcluster.Cluster, dir, def, tokenFile string, stdout, stderr io.Writer) error {
	file := filepath.Join(dir, "services.json")
	if err := discovery.WriteServicesFile(file, c.Services()); err != nil {
		return err
	}
	if def != "" {
		if other, err := keepclient.LoadServices(def); err == nil && anyAccepts(ctx, other) {
			// Another cluster is live: leave its file alone.
			fmt.Fprintf(stderr, "keep up: %s points at another running cluster; leaving it, use --services %s for this one\n", def, file)
			def = ""
		} else {
			if err := discovery.WriteServicesFile(def, c.Services()); err != nil {
				return err
			}
			// Once stopped, the default file would only point at dead ports.
			defer removeIfOurs(def, c.Services())
		}
	}
	if err := printCluster(c, dir, file, def, tokenFile, stdout); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "keep up: stopping")
	return nil
}

// printCluster shows the servers of c, whose data is in dir, their
// services files and system token, and how to use them.
func printCluster(c *localcluster.Cluster, dir, file, def, tokenFile string, stdout io.Writer) error {
	fmt.Fprintf(stdout, "keep up: %d block servers, data in %s\n", len(c.Servers), dir)
	for _, n := range c.Servers {
		fmt.Fprintf(stdout, "  %s  %s  %s\n", n.Service.UUID, n.Service.URL(), n.Dir)
	}
	if c.Proxy != nil {
		pfile := filepath.Join(dir, "proxy-services.json")
		if err := discovery.WriteServicesFile(pfile, c.ProxyServices()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "  %s  %s  (proxy)\n", c.Proxy.Service.UUID, c.Proxy.Service.URL())
		fmt.Fprintf(stdout, "\nThrough the proxy:  keep put --services %s FILE\n", pfile)
	}
	if def != "" {
		fmt.Fprintf(stdout, "\nServices file: %s (also %s, used by default)\n", file, def)
	} else {
		fmt.Fprintf(stdout, "\nServices file: %s (no default location: pass --services)\n", file)
	}
	fmt.Fprintf(stdout, "System token: %s (for keep check and keep balance: --system-token-file %s)\n", tokenFile, tokenFile)
	fmt.Fprintf(stdout, "Try:  keep put --replicas 2 FILE > manifest.txt && keep get manifest.txt -o OUT\n")
	fmt.Fprintf(stdout, "Press Ctrl-C to stop.\n")
	return nil
}

// systemToken reads the cluster's system token from file, creating the
// file with a random token (readable by its owner only) on first use.
func systemToken(file string) (string, error) {
	if b, err := os.ReadFile(file); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	}
	b := make([]byte, 24)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the system token: %w", err)
	}
	return tok, nil
}

// removeIfOurs removes the services file at path if it still lists
// exactly svcs (no later "keep up" has replaced it).
func removeIfOurs(path string, svcs []keepclient.Service) {
	got, err := keepclient.LoadServices(path)
	if err != nil || len(got) != len(svcs) {
		return
	}
	for i := range got {
		if got[i] != svcs[i] {
			return
		}
	}
	os.Remove(path)
}

// defaultUpDir is where "keep up" keeps data unless told otherwise.
func defaultUpDir() string {
	if d, err := discovery.DefaultServicesFile(); err == nil {
		return filepath.Join(filepath.Dir(d), "cluster")
	}
	return filepath.Join(os.TempDir(), "keep-cluster")
}
