package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
)

// registryHelp starts the help of --registry, for keep server and keep
// proxy.
const registryHelp = "accept only the tokens the token registry (keep registry, or an Arvados API server) at `HOST[:PORT]` knows, " +
	"asked over HTTPS (GET /arvados/v1/users/current; answers cached for a minute, refusals for 5 s): GET and HEAD need a read token, PUT a write token; " +
	"the registry's certificate is checked against the system's authorities, or those in the PEM file $SSL_CERT_FILE names"

// newTokenChecker returns a checker of the tokens the registry at host
// knows, trusting the system's certificate authorities (which
// $SSL_CERT_FILE replaces).
func newTokenChecker(host string) (*apiauth.Checker, error) {
	return apiauth.New(apiauth.Options{APIHost: host})
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
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// writeAddrFile writes the address l is bound to into the file at path
// (--addr-file; nothing when path is ""), closing l if it cannot.
func writeAddrFile(path string, l net.Listener) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
		l.Close()
		return err
	}
	return nil
}
