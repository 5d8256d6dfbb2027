package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/internal/arvconfig"
	"github.com/keepproject/keep/internal/version"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepproxy"
)

const proxySummary = `Run a Keep proxy: accepts one upload per block and writes it to the
block services behind it (X-Keep-Desired-Replicas copies, default 2).

Memory: block buffers are held only while in use (plus --buffer-idle for
reuse) and never total more than (--max-reads + --max-writes) × 64 MiB
+ 8 MiB (just over 2 GiB with the defaults). A PUT's buffer grows as its body arrives, so a
slow client holds memory for what it has sent, not what it announced, and
holds no write slot until its body is complete.

Slow clients: every request and response body must move at least
--min-rate bytes/s, measured over each --rate-window (the first window
counting from the request's arrival). A request body that falls behind
gets 408 and its connection is closed; a response that falls behind is
cut off. Request headers must arrive within 30 s.

With --config, the listen address and TLS files come from an Arvados
cluster configuration (/etc/arvados/config.yml): this proxy is the entry
of Services.Keepproxy.InternalURLs named by --internal-url, else the only
one on this host, served over HTTPS when that URL is https. Flags given
as well override the file. The block servers are found as without it
(--services, ARVADOS_KEEP_SERVICES, ARVADOS_API_HOST).

A changed list of block servers is taken without a restart: the
--services file is read again (and the API server asked again) every
--services-check, and at once on SIGHUP. Each change is logged with the
servers added, removed and updated. A list that cannot be read or parsed,
or is empty, is logged as an error and the previous list stays in use;
replace the file by renaming a new one over it, so that it is never read
half-written.

Tokens: the proxy accepts only the tokens the token registry given by
--registry knows (with --config and no --registry, the cluster's API
server, Services.Controller.ExternalURL): GET and HEAD need a read
token, PUT a write token; an unknown token gets 401, too small a scope
403, and 502 while the registry cannot be asked. The registry's
certificate is checked against the system's authorities, or those in
the PEM file $SSL_CERT_FILE names. Without a registry the proxy refuses
to start unless --any-token is given, which accepts every token and
leaves the block servers to apply their own rules: only for tests and
closed networks.`

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("proxy", "", proxySummary, stderr)
	configFile := fs.String("config", "", "read the listen address and TLS files from an Arvados cluster configuration `file`, such as /etc/arvados/config.yml")
	clusterID := fs.String("cluster", "", "the cluster `id` to use when the --config file configures several")
	internalURL := fs.String("internal-url", "", "with --config: this proxy's `URL` among Services.Keepproxy.InternalURLs (default $ARVADOS_SERVICE_INTERNAL_URL, else the only one whose host is this machine)")
	listen := fs.String("listen", "127.0.0.1:25107", "`address` to listen on (Arvados: the host and port of this proxy's Services.Keepproxy.InternalURLs entry, or of its ListenURL)")
	addrFile := fs.String("addr-file", "", "write the bound address to this `file` (useful with --listen :0)")
	maxWrites := fs.Int("max-writes", keepproxy.DefaultMaxWrites, "PUTs written to the servers at once; their buffers hold at most this × 64 MiB + 8 MiB; more get 503 with Retry-After")
	maxReads := fs.Int("max-reads", keepproxy.DefaultMaxReads, "GETs and HEADs handled at once; their buffers hold at most this × 64 MiB; more get 503 with Retry-After")
	maxBlocks := fs.Int("max-blocks", 0, "set both --max-reads and --max-writes to `n` (the older flag)")
	minRate := fs.Int64("min-rate", keepproxy.DefaultMinRate, "slowest body transfer accepted, in `bytes/s`")
	window := fs.Duration("rate-window", keepproxy.DefaultRateWindow, "the period over which --min-rate is measured")
	bufIdle := fs.Duration("buffer-idle", keepproxy.DefaultBufferIdle, "keep an unused block buffer this long before returning its memory")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with the certificate in `file` (needs --tls-key) (Arvados: TLS.Certificate, used when this proxy's URL is https)")
	tlsKey := fs.String("tls-key", "", "private key `file` for --tls-cert (Arvados: TLS.Key)")
	servicesCheck := fs.Duration("services-check", 5*time.Second, "look for a changed list of block servers this often (read the --services file again, or ask the API server); 0: only on SIGHUP")
	registry := fs.String("registry", "", registryHelp+"; needed unless --any-token, or --config names Services.Controller.ExternalURL")
	anyToken := fs.Bool("any-token", false, "accept every token, passing it on to the block servers, which apply their own rules: only for tests and closed networks")
	var cf clientFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "keep proxy: takes no arguments, and --tls-cert needs --tls-key")
		fs.Usage()
		return errUsage
	}
	if *anyToken && *registry != "" {
		return usageError(fs, "--registry and --any-token contradict each other: give one")
	}
	if *servicesCheck < 0 {
		return usageError(fs, "--services-check %v: want 0 (only on SIGHUP) or more", *servicesCheck)
	}
	opts := keepproxy.Options{MaxWrites: *maxWrites, MaxReads: *maxReads, MinRate: *minRate, RateWindow: *window, BufferIdle: *bufIdle}
	if err := checkProxyFlags(fs, &opts, *maxBlocks); err != nil {
		fmt.Fprintln(stderr, "keep proxy:", err)
		return errUsage
	}
	pc := proxyConfig{listen: *listen, tlsCert: *tlsCert, tlsKey: *tlsKey, registry: *registry, anyToken: *anyToken}
	if *configFile != "" {
		if err := pc.fromArvados(fs, *configFile, *clusterID, cmp.Or(*internalURL, os.Getenv("ARVADOS_SERVICE_INTERNAL_URL"))); err != nil {
			return fmt.Errorf("--config %s: %w", *configFile, err)
		}
	} else if *clusterID != "" || *internalURL != "" {
		return usageError(fs, "--cluster and --internal-url need --config")
	}
	if pc.registry == "" && !pc.anyToken {
		fmt.Fprintln(stderr, "keep proxy: no token registry: give --registry HOST[:PORT], the registry or Arvados API server whose tokens the proxy accepts, or --any-token to accept every token (only for tests and closed networks)")
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opts.Logger = log
	tokens := "any"
	if pc.registry != "" {
		checker, err := newTokenChecker(pc.registry)
		if err != nil {
			return usageError(fs, "--registry: %v", err)
		}
		defer checker.CloseIdleConnections()
		opts.TokenChecker = checker
		tokens = "registry " + pc.registry
		if pc.registryFrom != "" {
			tokens += " (" + pc.registryFrom + ")"
		}
	} else {
		log.Warn("accepting every token (--any-token), passing it on to the block servers: only for tests and closed networks")
	}
	if pc.managementToken != "" {
		log.Warn("ManagementToken is set in the configuration but not enforced yet: /_health/ping answers anyone who can reach this proxy")
	}
	kc, res, err := cf.newClient(ctx, keepproxy.DefaultReplicas, nil, log)
	if err != nil {
		return err
	}
	defer kc.Close()
	l, err := listenTLS(pc.listen, pc.tlsCert, pc.tlsKey)
	if err != nil {
		return err
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
			l.Close()
			return err
		}
	}
	attrs := []any{"addr", l.Addr().String(), "tls", pc.tlsCert != "", "services", res.Source(), "count", len(kc.Services()), "tokens", tokens, "version", version.String()}
	if pc.internalURL != "" {
		attrs = append(attrs, "internal_url", pc.internalURL)
	}
	// Watching (and SIGHUP handled) before "listening" is logged, so
	// that whoever waits for that line may send SIGHUP.
	stopWatch := watchServices(ctx, res, kc, *servicesCheck, log)
	defer stopWatch()
	log.Info("keep proxy listening", attrs...)
	px := keepproxy.NewWithOptions(kc, opts)
	defer px.Close()
	return serveHTTP(ctx, l, &http.Server{
		Handler: px,
		// The proxy paces bodies itself (--min-rate), so there is no
		// whole-request timeout, which would have to choose between
		// cutting off honest slow links and letting tricklers stay.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, log)
}

// watchServices follows the proxy's list of block servers until ctx
// ends or the returned function is called (which waits for it to stop):
// every interval (0: never) and on SIGHUP it reads the list again; a
// changed list goes to kc and to the log, with what changed; a list that
// cannot be had is logged as an error and the previous one kept.
func watchServices(ctx context.Context, res *discovery.Resolver, kc *keepclient.Client, every time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	kick := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reading the list of keep services again", "services", res.Source())
				select {
				case kick <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	wg.Go(func() {
		res.Watch(ctx, discovery.WatchConfig{
			Every: every,
			Kick:  kick,
			Changed: func(c discovery.Change) {
				if !c.Changed() {
					log.Info("keep services unchanged", "services", res.Source(), "count", len(c.Services))
					return
				}
				kc.SetServices(c.Services)
				log.Info("keep services changed; writing to the new list", "services", res.Source(), "count", len(c.Services),
					"added", describeServices(c.Added), "removed", describeServices(c.Removed), "updated", describeServices(c.Updated))
			},
			Failed: func(err error) {
				log.Error("keep services could not be read again; still using the previous list", "count", len(kc.Services()), "err", err)
			},
		})
	})
	return func() {
		cancel()
		signal.Stop(hup)
		wg.Wait()
	}
}

// describeServices names services for a log line: "uuid host:port",
// comma-separated, with "(read-only)" where it applies.
func describeServices(svcs []keepclient.Service) string {
	var parts []string
	for _, s := range svcs {
		d := s.String() + " " + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
		if s.ReadOnly {
			d += " (read-only)"
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, ", ")
}

// proxyConfig is where the proxy listens and how, from the flags and
// --config.
type proxyConfig struct {
	listen          string
	tlsCert, tlsKey string
	internalURL     string // the InternalURLs entry served, with --config
	registry        string // the token registry's host[:port], or ""
	registryFrom    string // where registry came from, when not --registry
	anyToken        bool   // --any-token
	// managementToken is read from --config only and not enforced yet.
	// TODO(management-token): give it to keepproxy once /_health/ping
	// (and metrics, when the proxy has them) check it.
	managementToken string
}

// fromArvados fills in pc from an Arvados config.yml, leaving alone
// whatever a flag set on fs gave.
func (pc *proxyConfig) fromArvados(fs *flag.FlagSet, path, clusterID, given string) error {
	set := flagsSet(fs)
	c, err := loadArvadosConfig(path, clusterID)
	if err != nil {
		return err
	}
	ep, err := c.Proxy(given, arvconfig.IsLocal)
	if err != nil {
		return withURLHint(err)
	}
	pc.internalURL, pc.managementToken = ep.InternalURL, c.ManagementToken
	if pc.registry == "" && !pc.anyToken {
		// The cluster's API server knows its tokens, as Arvados
		// keepproxy asks it.
		if pc.registry, err = c.ControllerHost(); err != nil {
			return err
		}
		if pc.registry != "" {
			pc.registryFrom = "Services.Controller.ExternalURL"
		}
	}
	if !set["listen"] {
		pc.listen = ep.Listen
	}
	if !set["tls-cert"] && ep.TLS {
		if pc.tlsCert, pc.tlsKey, err = c.TLSFiles(); err != nil {
			return fmt.Errorf("%s is https: %w", ep.InternalURL, err)
		}
	}
	return nil
}

// checkProxyFlags applies --max-blocks and refuses values that are not
// positive.
func checkProxyFlags(fs *flag.FlagSet, opts *keepproxy.Options, maxBlocks int) error {
	set := flagsSet(fs)
	if set["max-blocks"] {
		if maxBlocks < 1 {
			return fmt.Errorf("--max-blocks %d: want at least 1", maxBlocks)
		}
		if !set["max-reads"] {
			opts.MaxReads = maxBlocks
		}
		if !set["max-writes"] {
			opts.MaxWrites = maxBlocks
		}
	}
	switch {
	case opts.MaxReads < 1 || opts.MaxWrites < 1:
		return fmt.Errorf("--max-reads and --max-writes must be at least 1 (got %d and %d)", opts.MaxReads, opts.MaxWrites)
	case opts.MinRate < 1:
		return fmt.Errorf("--min-rate %d: want at least 1 byte/s", opts.MinRate)
	case opts.RateWindow <= 0 || opts.BufferIdle <= 0:
		return fmt.Errorf("--rate-window and --buffer-idle must be positive (got %v and %v)", opts.RateWindow, opts.BufferIdle)
	}
	return nil
}

// listenTLS listens on addr, serving TLS with the certificate and key in
// the given files when certFile is not "".
func listenTLS(addr, certFile, keyFile string) (net.Listener, error) {
	var cfg *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading --tls-cert %s and --tls-key %s: %w", certFile, keyFile, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		l = tls.NewListener(l, cfg)
	}
	return l, nil
}

// serve runs handler on l until ctx is cancelled, then shuts down
// gracefully: it stops accepting and lets requests in flight finish.
func serve(ctx context.Context, l net.Listener, handler http.Handler, log *slog.Logger) error {
	return serveHTTP(ctx, l, &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		// A client that sends or reads a block at a trickle must not
		// hold a request slot (and a temp file) for ever: 64 MiB in
		// 5 minutes is 220 kB/s.
		ReadTimeout:  5 * time.Minute,
		WriteTimeout: 5 * time.Minute,
		IdleTimeout:  2 * time.Minute,
	}, log)
}

// serveHTTP runs srv on l until ctx is cancelled, then shuts down
// gracefully.
func serveHTTP(ctx context.Context, l net.Listener, srv *http.Server, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
