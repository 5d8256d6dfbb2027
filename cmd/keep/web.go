package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/keepproject/keep/internal/version"
	"github.com/keepproject/keep/keepweb"
)

const webSummary = `Serve collections read-only over HTTP and WebDAV, in keep-web's
conventions: /c=ID/PATH, ID being a portable data hash, the locator
'keep put --store-manifest' printed, or (with ARVADOS_API_HOST naming the
registry) a collection's uuid or name. Files are served with Range, HEAD
and ETags; directories as plain HTML pages, or with ?download=zip as a
zip streamed as it is read; PROPFIND answers WebDAV clients (rclone, file
managers). Writes get 405.

Tokens: "Authorization: Bearer TOKEN" (or "OAuth2 TOKEN"), or
?api_token=TOKEN, which is put in a cookie and redirected away. Blocks
are read with the caller's token, so with signing on the servers serve
only what it may read. A request without a token gets 401, unless
--anonymous serves it with this process's own token (ARVADOS_API_TOKEN,
else KEEP_TOKEN, else keep-local). See docs/web.md.`

// webFlags is keep web's command line.
type webFlags struct {
	listen, addrFile string
	tlsCert, tlsKey  string
	anonymous        bool
	opts             keepweb.Options
	cf               clientFlags
}

func (f *webFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", "127.0.0.1:25109", "`address` to listen on")
	fs.StringVar(&f.addrFile, "addr-file", "", "write the bound address to this `file` (useful with --listen :0)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with the certificate in `file` (needs --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key `file` for --tls-cert")
	fs.BoolVar(&f.anonymous, "anonymous", false, "serve requests that bring no token with this process's token (ARVADOS_API_TOKEN, else KEEP_TOKEN, else keep-local)")
	fs.IntVar(&f.opts.BlocksAhead, "blocks-ahead", keepweb.DefaultBlocksAhead, "blocks each download fetches ahead of the one it sends (memory: this + 1 blocks of up to 64 MiB per download)")
	fs.IntVar(&f.opts.MaxDownloads, "max-downloads", 8, "file and zip downloads sent at once; more get 503 with Retry-After (memory: at most this × (--blocks-ahead + 1) × 64 MiB, 2 GiB with the defaults)")
	f.cf.register(fs)
}

// check refuses a command line keep web cannot run with.
func (f *webFlags) check(fs *flag.FlagSet, pos []string) error {
	switch {
	case len(pos) != 0:
		return usageError(fs, "takes no arguments")
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return usageError(fs, "--tls-cert needs --tls-key, and --tls-key --tls-cert")
	case f.opts.BlocksAhead < 1:
		return usageError(fs, "--blocks-ahead %d: want at least 1", f.opts.BlocksAhead)
	case f.opts.MaxDownloads < 1:
		return usageError(fs, "--max-downloads %d: want at least 1", f.opts.MaxDownloads)
	}
	return nil
}

func runWeb(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("web", "", webSummary, stderr)
	var f webFlags
	if err := parseLeadingFlags(fs, &f, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	kc, res, err := f.cf.newClient(ctx, 1, nil, log)
	if err != nil {
		return err
	}
	defer kc.Close()
	f.opts.Client, f.opts.Logger = kc, log
	registry := "none (stored manifests and portable data hashes only)"
	if res.APIHost() != "" {
		f.opts.Collections = keepweb.APICollections{Host: res.APIHost(), Insecure: res.Insecure()}
		registry = res.APIHost()
	}
	if f.anonymous {
		f.opts.AnonymousToken = keepToken(res)
	}
	h, err := keepweb.New(f.opts)
	if err != nil {
		return err
	}
	l, err := listenTLS(f.listen, f.tlsCert, f.tlsKey)
	if err != nil {
		return err
	}
	if err := writeAddrFile(f.addrFile, l); err != nil {
		return err
	}
	log.Info("keep web listening", "addr", l.Addr().String(), "tls", f.tlsCert != "", "services", res.Source(),
		"count", len(kc.Services()), "registry", registry, "anonymous", f.anonymous, "max_downloads", f.opts.MaxDownloads, "version", version.String())
	return serveHTTP(ctx, l, &http.Server{
		Handler: h,
		// No write timeout: a download of a large file takes as long as
		// it takes.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, log)
}
