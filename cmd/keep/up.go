package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def, _ := discovery.DefaultServicesFile()
	fs := newFlagSet("up", "", "Run a local cluster in the foreground until interrupted: block servers\n(and a proxy with --proxy) on loopback, data under --dir. Writes\nDIR/services.json and the default services file "+def+",\nwhich put and get use when nothing else is configured.", stderr)
	dir := fs.String("dir", defaultUpDir(), "`directory` for the servers' data")
	servers := fs.Int("servers", 4, "number of block servers")
	proxy := fs.Bool("proxy", false, "also run a proxy; its services file is DIR/proxy-services.json")
	capacity := fs.String("capacity", "", "per-server volume limit in `bytes`, as for 'keep server' (suffixes K, M, G, T = powers of 1024; KB, MB, GB, TB = powers of 1000); default none")
	verbose := fs.Bool("v", false, "log every request")
	useS3 := fs.Bool("s3", false, "keep the blocks in a local S3 server (versitygw, started in DIR/s3) rather than in directories: a bucket per server")
	s3Bin := fs.String("s3-server", "", "with --s3: the versitygw `binary` (default: $KEEP_TEST_S3_SERVER, versitygw on PATH, or ~/.cache/keep-ci/bin/versitygw)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 0:
		return usageError(fs, "takes no arguments, not %q", pos)
	case *servers < 1:
		return usageError(fs, "--servers must be at least 1, not %d", *servers)
	}
	var capBytes int64
	if *capacity != "" {
		n, err := bytesize.Parse(*capacity)
		if err != nil {
			return usageError(fs, "--capacity: %v", err)
		}
		capBytes = n
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	tokenFile := filepath.Join(*dir, "system-token")
	sysToken, err := systemToken(tokenFile)
	if err != nil {
		return err
	}
	lc := localcluster.Config{Dir: *dir, Servers: *servers, Proxy: *proxy, Capacity: capBytes, SystemToken: sysToken, Logger: log}
	if *useS3 {
		s3srv, err := s3local.Start(*s3Bin, filepath.Join(*dir, "s3"))
		if err != nil {
			return err
		}
		defer s3srv.Stop()
		lc.Volume = func(i int, _ string) (string, error) {
			bucket := fmt.Sprint("server-", i)
			if err := s3srv.NewBucket(bucket); err != nil && !errors.Is(err, iofs.ErrExist) {
				return "", err
			}
			return s3srv.VolumeURL(bucket), nil
		}
		fmt.Fprintf(stdout, "keep up: S3 server on %s, buckets in %s\n", s3srv.Socket, s3srv.Root)
	}
	c, err := localcluster.Start(ctx, lc)
	if err != nil {
		return err
	}
	defer c.Close()

	file := filepath.Join(*dir, "services.json")
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
	fmt.Fprintf(stdout, "keep up: %d block servers, data in %s\n", len(c.Servers), *dir)
	for _, n := range c.Servers {
		fmt.Fprintf(stdout, "  %s  %s  %s\n", n.Service.UUID, n.Service.URL(), n.Dir)
	}
	if c.Proxy != nil {
		pfile := filepath.Join(*dir, "proxy-services.json")
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
	<-ctx.Done()
	fmt.Fprintln(stdout, "keep up: stopping")
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
