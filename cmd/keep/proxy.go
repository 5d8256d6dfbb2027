package main

import (
	"context"
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

// proxyFlags is keep proxy's command line.
type proxyFlags struct {
	p             arvconfig.ProxySettings // the settings flags give as they are
	config        configFlags
	addrFile      string
	opts          keepproxy.Options
	maxBlocks     int
	servicesCheck time.Duration
	cf            clientFlags
}

func (f *proxyFlags) register(fs *flag.FlagSet) {
	f.config.register(fs, "the listen address and TLS files", "proxy", "Keepproxy")
	fs.StringVar(&f.p.Listen, "listen", "127.0.0.1:25107", "`address` to listen on (Arvados: the host and port of this proxy's Services.Keepproxy.InternalURLs entry, or of its ListenURL)")
	fs.StringVar(&f.addrFile, "addr-file", "", "write the bound address to this `file` (useful with --listen :0)")
	fs.IntVar(&f.opts.MaxWrites, "max-writes", keepproxy.DefaultMaxWrites, "PUTs written to the servers at once; their buffers hold at most this × 64 MiB + 8 MiB; more get 503 with Retry-After")
	fs.IntVar(&f.opts.MaxReads, "max-reads", keepproxy.DefaultMaxReads, "GETs and HEADs handled at once; their buffers hold at most this × 64 MiB; more get 503 with Retry-After")
	fs.IntVar(&f.maxBlocks, "max-blocks", 0, "set both --max-reads and --max-writes to `n` (the older flag)")
	fs.Int64Var(&f.opts.MinRate, "min-rate", keepproxy.DefaultMinRate, "slowest body transfer accepted, in `bytes/s`")
	fs.DurationVar(&f.opts.RateWindow, "rate-window", keepproxy.DefaultRateWindow, "the period over which --min-rate is measured")
	fs.DurationVar(&f.opts.BufferIdle, "buffer-idle", keepproxy.DefaultBufferIdle, "keep an unused block buffer this long before returning its memory")
	fs.StringVar(&f.p.TLSCert, "tls-cert", "", "serve HTTPS with the certificate in `file` (needs --tls-key) (Arvados: TLS.Certificate, used when this proxy's URL is https)")
	fs.StringVar(&f.p.TLSKey, "tls-key", "", "private key `file` for --tls-cert (Arvados: TLS.Key)")
	fs.DurationVar(&f.servicesCheck, "services-check", 5*time.Second, "look for a changed list of block servers this often (read the --services file again, or ask the API server); 0: only on SIGHUP")
	fs.StringVar(&f.p.Registry, "registry", "", registryHelp+"; needed unless --any-token, or --config names Services.Controller.ExternalURL")
	fs.BoolVar(&f.p.AnyToken, "any-token", false, "accept every token, passing it on to the block servers, which apply their own rules: only for tests and closed networks")
	f.cf.register(fs)
}

// check refuses a command line keep proxy cannot run with, and applies
// --max-blocks.
func (f *proxyFlags) check(fs *flag.FlagSet, pos []string) error {
	if len(pos) != 0 || (f.p.TLSCert == "") != (f.p.TLSKey == "") {
		fmt.Fprintln(fs.Output(), "keep proxy: takes no arguments, and --tls-cert needs --tls-key")
		fs.Usage()
		return errUsage
	}
	if f.p.AnyToken && f.p.Registry != "" {
		return usageError(fs, "--registry and --any-token contradict each other: give one")
	}
	if f.servicesCheck < 0 {
		return usageError(fs, "--services-check %v: want 0 (only on SIGHUP) or more", f.servicesCheck)
	}
	if err := checkProxyFlags(fs, &f.opts, f.maxBlocks); err != nil {
		fmt.Fprintln(fs.Output(), "keep proxy:", err)
		return errUsage
	}
	return nil
}

// fromConfig fills in f.p from the --config file, leaving alone
// whatever a flag set on fs gave, and refuses --cluster and
// --internal-url without --config.
func (f *proxyFlags) fromConfig(fs *flag.FlagSet) error {
	set := flagsSet(fs)
	if err := f.config.check(fs, set); err != nil || f.config.file == "" {
		return err
	}
	c, ep, err := loadConfig(&f.config, (*arvconfig.Cluster).Proxy)
	if err == nil {
		err = c.FillProxy(&f.p, ep, set)
	}
	if err != nil {
		return fmt.Errorf("--config %s: %w", f.config.file, err)
	}
	return nil
}

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("proxy", "", proxySummary, stderr)
	var f proxyFlags
	if err := parseLeadingFlags(fs, &f, args); err != nil {
		return err
	}
	if err := f.fromConfig(fs); err != nil {
		return err
	}
	if f.p.Registry == "" && !f.p.AnyToken {
		fmt.Fprintln(stderr, "keep proxy: no token registry: give --registry HOST[:PORT], the registry or Arvados API server whose tokens the proxy accepts, or --any-token to accept every token (only for tests and closed networks)")
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	f.opts.Logger = log
	tokens := "any"
	if f.p.Registry != "" {
		checker, err := newTokenChecker(f.p.Registry)
		if err != nil {
			return usageError(fs, "--registry: %v", err)
		}
		defer checker.CloseIdleConnections()
		f.opts.TokenChecker = checker
		tokens = "registry " + f.p.Registry
		if f.p.RegistryFrom != "" {
			tokens += " (" + f.p.RegistryFrom + ")"
		}
	} else {
		log.Warn("accepting every token (--any-token), passing it on to the block servers: only for tests and closed networks")
	}
	if f.p.ManagementToken != "" {
		log.Warn("ManagementToken is set in the configuration but not enforced yet: /_health/ping answers anyone who can reach this proxy")
	}
	return f.run(ctx, log, tokens)
}

// run proxies until ctx ends, logging to log; tokens says which tokens
// it accepts, for the log.
func (f *proxyFlags) run(ctx context.Context, log *slog.Logger, tokens string) error {
	kc, res, err := f.cf.newClient(ctx, keepproxy.DefaultReplicas, nil, log)
	if err != nil {
		return err
	}
	defer kc.Close()
	l, err := listenTLS(f.p.Listen, f.p.TLSCert, f.p.TLSKey)
	if err != nil {
		return err
	}
	if err := writeAddrFile(f.addrFile, l); err != nil {
		return err
	}
	attrs := []any{"addr", l.Addr().String(), "tls", f.p.TLSCert != "", "services", res.Source(), "count", len(kc.Services()), "tokens", tokens, "version", version.String()}
	if f.p.InternalURL != "" {
		attrs = append(attrs, "internal_url", f.p.InternalURL)
	}
	// Watching (and SIGHUP handled) before "listening" is logged, so
	// that whoever waits for that line may send SIGHUP.
	stopWatch := watchServices(ctx, res, kc, f.servicesCheck, log)
	defer stopWatch()
	log.Info("keep proxy listening", attrs...)
	px := keepproxy.NewWithOptions(kc, f.opts)
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
