package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/keepproject/keep/keepstore"
)

// srvDirs is a repeatable directory flag.
type srvDirs []string

func (d *srvDirs) String() string { return strings.Join(*d, ",") }

func (d *srvDirs) Set(v string) error {
	if v == "" {
		return errors.New("empty directory")
	}
	*d = append(*d, v)
	return nil
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("server", "", "Run a keepstore-compatible block server storing blocks in directories\n"+
		"(layout DIR/xyz/HASH, as Arvados keepstore Directory volumes).", stderr)
	listen := fs.String("listen", "127.0.0.1:25107", "`address` to listen on (port 0 picks a free one)")
	addrFile := fs.String("addr-file", "", "write the bound address to this `file` (useful with --listen :0)")
	var volumes, roVolumes srvDirs
	fs.Var(&volumes, "volume", "store blocks in `dir` (repeatable)")
	fs.Var(&roVolumes, "read-only-volume", "serve blocks from `dir` without writing (repeatable)")
	capacity := fs.String("capacity", "", "limit each volume to `size` bytes of blocks (suffixes K, M, G, T = powers of 1024; KB, MB, GB, TB = powers of 1000)")
	classes := fs.String("classes", "", "comma-separated storage `classes` of all volumes (default \"default\")")
	keyFile := fs.String("signing-key-file", "", "sign returned locators with the blob signing key in `file`")
	ttl := fs.Duration("signing-ttl", keepstore.DefaultSigningTTL, "signature lifetime")
	requireSigs := fs.Bool("require-signatures", false, "require valid signatures on GET and HEAD (needs --signing-key-file)")
	sysTokenFile := fs.String("system-token-file", "", "allow block listing (/index) with the token in `file`")
	maxRequests := fs.Int("max-requests", keepstore.DefaultMaxConcurrentRequests, "answer 503 (Retry-After) beyond this many concurrent requests")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with the certificate in `file` (needs --tls-key)")
	tlsKey := fs.String("tls-key", "", "private key `file` for --tls-cert")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || len(volumes)+len(roVolumes) == 0 || (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "keep server: need at least one --volume or --read-only-volume, no arguments, and --tls-cert with --tls-key")
		fs.Usage()
		return errUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg := keepstore.Config{SigningTTL: *ttl, RequireSignatures: *requireSigs, MaxConcurrentRequests: *maxRequests, Logger: log}
	var capBytes int64
	if *capacity != "" {
		n, err := srvParseBytes(*capacity)
		if err != nil {
			return fmt.Errorf("--capacity: %w", err)
		}
		capBytes = n
	}
	classList := strings.Split(*classes, ",")
	for _, dir := range volumes {
		cfg.Volumes = append(cfg.Volumes, keepstore.VolumeConfig{Path: dir, Capacity: capBytes, Classes: classList})
	}
	for _, dir := range roVolumes {
		cfg.Volumes = append(cfg.Volumes, keepstore.VolumeConfig{Path: dir, ReadOnly: true, Classes: classList})
	}
	if *keyFile != "" {
		key, err := srvReadSecret(*keyFile)
		if err != nil {
			return fmt.Errorf("--signing-key-file: %w", err)
		}
		cfg.SigningKey = []byte(key)
	}
	if *sysTokenFile != "" {
		tok, err := srvReadSecret(*sysTokenFile)
		if err != nil {
			return fmt.Errorf("--system-token-file: %w", err)
		}
		cfg.SystemToken = tok
	}
	ks, err := keepstore.New(cfg)
	if err != nil {
		return err
	}
	defer ks.Close()

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			l.Close()
			return err
		}
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
			l.Close()
			return err
		}
	}
	log.Info("keep server listening", "addr", l.Addr().String(), "tls", *tlsCert != "",
		"volumes", len(volumes), "read_only_volumes", len(roVolumes), "signing", len(cfg.SigningKey) > 0)
	return serve(ctx, l, ks, log)
}

// srvReadSecret reads a key or token from a file, without surrounding
// whitespace such as a final newline.
func srvReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// srvParseBytes parses a byte count such as 1000, 10G, 512MiB or 2TB:
// K, M, G, T (optionally followed by "iB") are powers of 1024, KB, MB,
// GB, TB powers of 1000.
func srvParseBytes(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGTiBkmgtb")
	suffix := strings.ToUpper(s[len(num):])
	mult := int64(1)
	if suffix != "" && suffix != "B" {
		exp := strings.IndexByte("KMGT", suffix[0]) + 1
		if exp == 0 {
			return 0, fmt.Errorf("unknown size suffix in %q", s)
		}
		base := int64(1024)
		switch suffix[1:] {
		case "", "IB":
		case "B":
			base = 1000
		default:
			return 0, fmt.Errorf("unknown size suffix in %q", s)
		}
		for range exp {
			mult *= base
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}
