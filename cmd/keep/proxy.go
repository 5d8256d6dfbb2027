package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/keepproject/keep/keepproxy"
)

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("proxy", "", "Run a Keep proxy: accepts one upload per block and writes it to the\nblock services behind it (X-Keep-Desired-Replicas copies, default 2).", stderr)
	listen := fs.String("listen", "127.0.0.1:25107", "`address` to listen on")
	addrFile := fs.String("addr-file", "", "write the bound address to this `file` (useful with --listen :0)")
	maxBlocks := fs.Int("max-blocks", keepproxy.DefaultMaxRequests, "block requests handled at once (each may hold 64 MiB); more get 503 with Retry-After")
	var cf clientFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	kc, res, err := cf.newClient(ctx, keepproxy.DefaultReplicas, nil, log)
	if err != nil {
		return err
	}
	defer kc.Close()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
			l.Close()
			return err
		}
	}
	log.Info("keep proxy listening", "addr", l.Addr().String(), "services", res.Source(), "count", len(kc.Services()))
	px := keepproxy.New(kc, log)
	px.SetMaxRequests(*maxBlocks)
	return serve(ctx, l, px, log)
}

// serve runs handler on l until ctx is cancelled, then shuts down
// gracefully: it stops accepting and lets requests in flight finish.
func serve(ctx context.Context, l net.Listener, handler http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		// A client that sends or reads a block at a trickle must not
		// hold a request slot (and a temp file) for ever: 64 MiB in
		// 5 minutes is 220 kB/s.
		ReadTimeout:  5 * time.Minute,
		WriteTimeout: 5 * time.Minute,
		IdleTimeout:  2 * time.Minute,
	}
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
