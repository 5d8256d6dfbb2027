package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/arvconfig"
	"github.com/keepproject/keep/internal/version"
	"github.com/keepproject/keep/keepstore"
)

// serverSummary is keep server's help text, with the --volume forms of
// the drivers registered.
func serverSummary() string {
	return `Run a keepstore-compatible block server storing blocks on volumes, each
given by --volume or --read-only-volume as one of:
` + volumeForms() + `

With --config, the settings come from an Arvados cluster configuration
(/etc/arvados/config.yml), as keepstore reads it: this server is the entry
of Services.Keepstore.InternalURLs named by --internal-url, else the only
one on this host; it serves the volumes whose AccessViaHosts names that
entry (or is empty). Any flag given as well overrides the file.`
}

// volumeForms lists the --volume forms of the registered volume
// drivers, each with what it is indented below it.
func volumeForms() string {
	var b strings.Builder
	for _, d := range keepstore.Drivers() {
		b.WriteString("\n  " + strings.ReplaceAll(d.Usage, "\n", "\n      "))
	}
	return b.String()
}

// srvDirs is a repeatable volume flag.
type srvDirs []string

func (d *srvDirs) String() string { return strings.Join(*d, ",") }

func (d *srvDirs) Set(v string) error {
	if v == "" {
		return errors.New("empty volume")
	}
	*d = append(*d, v)
	return nil
}

// srvRate is a byte rate flag: a size as --capacity takes it, or a
// negative number.
type srvRate int64

func (r *srvRate) String() string { return srvFormatBytes(int64(*r)) }

func (r *srvRate) Set(v string) error {
	if rest, neg := strings.CutPrefix(v, "-"); neg {
		n, err := srvParseBytes(rest)
		if err != nil {
			return err
		}
		*r = srvRate(-max(n, 1))
		return nil
	}
	n, err := srvParseBytes(v)
	*r = srvRate(n)
	return err
}

// serverOptions is what runServer builds a server from: the flags,
// filled in from --config where a flag was not given.
type serverOptions struct {
	listen          string
	volumes         []keepstore.VolumeConfig
	signingKey      []byte
	signingTTL      time.Duration
	requireSigs     bool
	systemToken     string
	maxRequests     int
	tlsCert, tlsKey string
	logLevel        string
	managementToken string
	// The trash and pull settings as the flags take them (Arvados'
	// meanings of 0), turned into keepstore's by storeConfig.
	trash              bool
	trashLifetime      time.Duration // 0: delete at once
	trashCheckInterval time.Duration // 0: never sweep
	trashConcurrency   int           // 0: trash off
	pullConcurrency    int
	internalURL        string // the InternalURLs entry served, with --config
	registry           string // --registry: the token registry's host[:port], or ""
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("server", "", serverSummary(), stderr)
	configFile := fs.String("config", "", "read settings from an Arvados cluster configuration `file`, such as /etc/arvados/config.yml")
	clusterID := fs.String("cluster", "", "the cluster `id` to use when the --config file configures several")
	internalURL := fs.String("internal-url", "", "with --config: this server's `URL` among Services.Keepstore.InternalURLs (default $ARVADOS_SERVICE_INTERNAL_URL, else the only one whose host is this machine)")
	listen := fs.String("listen", "127.0.0.1:25107", "`address` to listen on; port 0 picks a free one (Arvados: the host and port of this server's Services.Keepstore.InternalURLs entry, or of its ListenURL)")
	addrFile := fs.String("addr-file", "", "write the bound address to this `file` (useful with --listen :0)")
	var volumes, roVolumes srvDirs
	fs.Var(&volumes, "volume", "store blocks in the volume at `URL`, a directory or a URL of a form above (repeatable); with --config, --volume and --read-only-volume replace the file's volumes (Arvados: Volumes.*.Driver and DriverParameters, such as DriverParameters.Root)")
	fs.Var(&roVolumes, "read-only-volume", "serve blocks from the volume at `URL` without writing (repeatable) (Arvados: Volumes.*.ReadOnly)")
	capacity := fs.String("capacity", "", "limit each volume to `size` bytes of blocks (suffixes K, M, G, T = powers of 1024; KB, MB, GB, TB = powers of 1000)")
	classes := fs.String("classes", "", "comma-separated storage `classes` of every volume, replacing those from --config; without either, \"default\" (Arvados: Volumes.*.StorageClasses)")
	keyFile := fs.String("signing-key-file", "", "sign returned locators with the blob signing key in `file` (Arvados: Collections.BlobSigningKey)")
	ttl := fs.Duration("signing-ttl", keepstore.DefaultSigningTTL, "how long a signature stays valid; copies younger than this are never trashed (Arvados: Collections.BlobSigningTTL)")
	requireSigs := fs.Bool("require-signatures", false, "require valid signatures on GET and HEAD; needs a signing key (Arvados: Collections.BlobSigning, which defaults to true there)")
	sysTokenFile := fs.String("system-token-file", "", "the token in `file` opens the admin routes: block listings (/index, /mounts), pull and trash lists, DELETE, untrash (Arvados: SystemRootToken)")
	mgmtTokenFile := fs.String("management-token-file", "", "the token in `file` opens /metrics, /_status and /_health/*, which answer 404 without one (Arvados: ManagementToken)")
	trash := fs.Bool("blob-trash", true, "act on trash lists and DELETE; false: DELETE answers 405 and trash list items are skipped (Arvados: Collections.BlobTrash)")
	trashLifetime := fs.Duration("blob-trash-lifetime", keepstore.DefaultTrashLifetime, "how long a trashed block can be restored before it is deleted; 0 deletes at once (Arvados: Collections.BlobTrashLifetime)")
	trashCheck := fs.Duration("blob-trash-check-interval", keepstore.DefaultTrashCheckInterval, "how often trash past its lifetime and stale temporary files are deleted; 0 never (Arvados: Collections.BlobTrashCheckInterval)")
	trashConc := fs.Int("blob-trash-concurrency", keepstore.DefaultTrashConcurrency, "trash list workers; 0 turns trashing off, as --blob-trash=false (Arvados: Collections.BlobTrashConcurrency)")
	pullConc := fs.Int("blob-replicate-concurrency", keepstore.DefaultPullConcurrency, "pull list workers, at least 1 (Arvados: Collections.BlobReplicateConcurrency)")
	maxRequests := fs.Int("max-requests", keepstore.DefaultMaxConcurrentRequests, "reads (GET, HEAD) and index listings handled at once; more get 503 with Retry-After (Arvados: API.MaxConcurrentRequests; 0 there means this default)")
	maxWrites := fs.Int("max-writes", keepstore.DefaultMaxConcurrentWrites, "uploads (PUT) handled at once; beyond that a new upload takes the slot of one lagging below --min-upload-rate, or gets 503 with Retry-After")
	minRate := srvRate(keepstore.DefaultMinUploadRate)
	fs.Var(&minRate, "min-upload-rate", "slowest an upload body may arrive, in `bytes/s` (suffixes as --capacity); a slower upload gets 408 and nothing is stored; 0 means the default, a negative value no minimum")
	grace := fs.Duration("upload-grace", keepstore.DefaultUploadGrace, "waiting for an upload's body allowed on top of --min-upload-rate (for a slow start or a pause)")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with the certificate in `file`; needs --tls-key (Arvados: TLS.Certificate, used when this server's URL is https)")
	tlsKey := fs.String("tls-key", "", "private key `file` for --tls-cert (Arvados: TLS.Key)")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error (Arvados: SystemLogs.LogLevel)")
	registry := fs.String("registry", "", registryHelp+"; without it any token may PUT, and GET and HEAD need only what --require-signatures asks")
	noSync := fs.Bool("no-sync", false, "for measuring only: answer uploads to directory volumes before the data is on disk, so a crash can lose acknowledged blocks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := flagsSet(fs)
	if fs.NArg() != 0 || (len(volumes)+len(roVolumes) == 0 && *configFile == "") || (*tlsCert == "") != (*tlsKey == "") {
		fmt.Fprintln(stderr, "keep server: need --config or at least one --volume or --read-only-volume, no arguments, and --tls-cert with --tls-key")
		fs.Usage()
		return errUsage
	}
	if *configFile == "" && (set["cluster"] || set["internal-url"]) {
		return usageError(fs, "--cluster and --internal-url need --config")
	}

	o := serverOptions{listen: *listen, signingTTL: *ttl, requireSigs: *requireSigs, maxRequests: *maxRequests,
		tlsCert: *tlsCert, tlsKey: *tlsKey, logLevel: *logLevel, registry: *registry,
		trash: *trash, trashLifetime: *trashLifetime, trashCheckInterval: *trashCheck, trashConcurrency: *trashConc, pullConcurrency: *pullConc}
	var capBytes int64
	if *capacity != "" {
		n, err := srvParseBytes(*capacity)
		if err != nil {
			return fmt.Errorf("--capacity: %w", err)
		}
		capBytes = n
	}
	for i, list := range [][]string{volumes, roVolumes} {
		for _, url := range list {
			p, err := keepstore.ParseVolume(url)
			if err != nil {
				return err
			}
			o.volumes = append(o.volumes, keepstore.VolumeConfig{Params: p, ReadOnly: i == 1, NoSync: *noSync})
		}
	}
	if *keyFile != "" {
		key, err := srvReadSecret(*keyFile)
		if err != nil {
			return fmt.Errorf("--signing-key-file: %w", err)
		}
		o.signingKey = []byte(key)
	}
	if *mgmtTokenFile != "" {
		tok, err := srvReadSecret(*mgmtTokenFile)
		if err != nil {
			return fmt.Errorf("--management-token-file: %w", err)
		}
		o.managementToken = tok
	}
	if *sysTokenFile != "" {
		tok, err := srvReadSecret(*sysTokenFile)
		if err != nil {
			return fmt.Errorf("--system-token-file: %w", err)
		}
		o.systemToken = tok
	}
	if *configFile != "" {
		given := cmp.Or(*internalURL, os.Getenv("ARVADOS_SERVICE_INTERNAL_URL"))
		c, ks, err := loadKeepstoreConfig(*configFile, *clusterID, given)
		if err == nil {
			err = o.fromArvados(c, ks, set)
		}
		if err != nil {
			return fmt.Errorf("--config %s: %w", *configFile, err)
		}
	}
	for i := range o.volumes {
		o.volumes[i].Capacity = capBytes
		if set["classes"] {
			o.volumes[i].Classes = strings.Split(*classes, ",")
		}
	}
	if o.requireSigs && len(o.signingKey) == 0 {
		return errors.New("signatures are required (--require-signatures, or Collections.BlobSigning in --config) but there is no signing key")
	}
	var checker *apiauth.Checker
	if o.registry != "" {
		var err error
		if checker, err = newTokenChecker(o.registry); err != nil {
			return usageError(fs, "--registry: %v", err)
		}
		defer checker.CloseIdleConnections()
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level %q: want debug, info, warn or error", o.logLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("keep server starting", "version", version.String())

	cfg, err := o.storeConfig()
	if err != nil {
		return err
	}
	cfg.MaxConcurrentWrites, cfg.MinUploadRate, cfg.UploadGrace, cfg.Logger = *maxWrites, int64(minRate), *grace, log
	if checker != nil {
		cfg.TokenChecker = checker
	}
	ks, err := keepstore.NewWithContext(ctx, cfg)
	if err != nil {
		return err
	}
	defer ks.Close() // closes the volumes too

	l, err := listenTLS(o.listen, o.tlsCert, o.tlsKey)
	if err != nil {
		return err
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(l.Addr().String()+"\n"), 0o644); err != nil {
			l.Close()
			return err
		}
	}
	ro, missing := 0, 0
	for _, v := range ks.Status(ctx).Volumes {
		switch {
		case v.Missing:
			missing++
		case v.ReadOnly:
			ro++
		}
	}
	attrs := []any{"addr", l.Addr().String(), "tls", o.tlsCert != "",
		"volumes", len(o.volumes) - ro - missing, "read_only_volumes", ro, "missing_volumes", missing,
		"signing", len(o.signingKey) > 0, "require_signatures", o.requireSigs,
		"trash", o.trash && o.trashConcurrency > 0, "management_routes", o.managementToken != ""}
	if o.internalURL != "" {
		attrs = append(attrs, "internal_url", o.internalURL)
	}
	attrs = append(attrs, "version", version.String())
	if o.registry != "" {
		log.Info("keep server tokens", "registry", o.registry, "accepted", o.acceptedTokens())
	} else {
		log.Info("keep server tokens", "accepted", o.acceptedTokens())
	}
	log.Info("keep server listening", attrs...)
	return serve(ctx, l, ks, log)
}

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

// acceptedTokens says, for the start-up log, which tokens the server
// accepts for what.
func (o *serverOptions) acceptedTokens() string {
	var s string
	switch {
	case o.registry != "":
		s = "tokens the registry knows: read tokens may GET and HEAD blocks, write tokens may also PUT them"
	case o.requireSigs:
		s = "any token may PUT blocks (no --registry); GET and HEAD need a signature valid for their token"
	default:
		s = "any token may PUT blocks (no --registry); GET and HEAD need no token"
	}
	if o.registry != "" && o.requireSigs {
		s += ", with a signature valid for their token"
	}
	if o.systemToken != "" {
		return s + "; the system token may do everything, including the admin routes"
	}
	return s + "; the admin routes are closed (no system token)"
}

// loadArvadosConfig reads an Arvados config.yml and returns the
// cluster's settings (the only cluster in it when clusterID is "").
func loadArvadosConfig(path, clusterID string) (*arvconfig.Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in the caller's message already
		}
		return nil, err
	}
	_, c, err := arvconfig.Load(data, clusterID)
	return c, err
}

// loadKeepstoreConfig reads an Arvados config.yml and picks this
// keepstore's entry in it (given, else the one on this host).
func loadKeepstoreConfig(path, clusterID, given string) (*arvconfig.Cluster, *arvconfig.Keepstore, error) {
	c, err := loadArvadosConfig(path, clusterID)
	if err != nil {
		return nil, nil, err
	}
	ks, err := c.Self(given, arvconfig.IsLocal)
	return c, ks, withURLHint(err)
}

// withURLHint adds to an error from picking this host's internal URL
// how to name it.
func withURLHint(err error) error {
	if errors.Is(err, arvconfig.ErrNotThisHost) || errors.Is(err, arvconfig.ErrSeveralOnHost) {
		return fmt.Errorf("%w; choose one with --internal-url", err)
	}
	return err
}

// fromArvados fills in o from an Arvados cluster configuration and the
// keepstore picked in it, leaving alone whatever a flag in set gave.
func (o *serverOptions) fromArvados(c *arvconfig.Cluster, ks *arvconfig.Keepstore, set map[string]bool) error {
	o.internalURL = ks.InternalURL
	if !set["management-token-file"] {
		o.managementToken = c.ManagementToken
	}
	if !set["listen"] {
		o.listen = ks.Listen
	}
	if !set["volume"] && !set["read-only-volume"] {
		for _, v := range ks.Volumes {
			p, err := keepstore.ArvadosVolume(v.Driver, v.Params)
			if err != nil {
				return fmt.Errorf("volume %s: %w", v.UUID, err)
			}
			o.volumes = append(o.volumes, keepstore.VolumeConfig{ID: v.UUID, Params: p, ReadOnly: v.ReadOnly,
				Replication: v.Replication, Classes: v.StorageClasses})
		}
		if len(o.volumes) == 0 {
			return fmt.Errorf("no volume is for %s: a volume is for the keepstores its AccessViaHosts names, or for all of them when it names none", ks.InternalURL)
		}
	}
	if !set["signing-key-file"] {
		o.signingKey = []byte(c.Collections.BlobSigningKey)
	}
	if !set["signing-ttl"] && c.Collections.BlobSigningTTL > 0 {
		o.signingTTL = time.Duration(c.Collections.BlobSigningTTL)
	}
	if !set["require-signatures"] {
		o.requireSigs = c.SigningRequired()
		if o.requireSigs && len(o.signingKey) == 0 {
			return errors.New("Collections.BlobSigning is on (the Arvados default) but Collections.BlobSigningKey is empty")
		}
	}
	if !set["system-token-file"] {
		o.systemToken = c.SystemRootToken
	}
	col := c.Collections
	if !set["blob-trash"] {
		o.trash = c.TrashEnabled()
	}
	if !set["blob-trash-lifetime"] && col.BlobTrashLifetime != nil {
		o.trashLifetime = time.Duration(*col.BlobTrashLifetime)
	}
	if !set["blob-trash-check-interval"] && col.BlobTrashCheckInterval != nil {
		o.trashCheckInterval = time.Duration(*col.BlobTrashCheckInterval)
	}
	if !set["blob-trash-concurrency"] && col.BlobTrashConcurrency != nil {
		o.trashConcurrency = *col.BlobTrashConcurrency
	}
	if !set["blob-replicate-concurrency"] && col.BlobReplicateConcurrency != nil {
		if *col.BlobReplicateConcurrency < 1 {
			return fmt.Errorf("Collections.BlobReplicateConcurrency is %d, but this server cannot turn pulls off; give at least 1", *col.BlobReplicateConcurrency)
		}
		o.pullConcurrency = *col.BlobReplicateConcurrency
	}
	if !set["max-requests"] && c.API.MaxConcurrentRequests > 0 {
		o.maxRequests = c.API.MaxConcurrentRequests
	}
	if !set["log-level"] && c.SystemLogs.LogLevel != "" {
		o.logLevel = arvadosLogLevel(c.SystemLogs.LogLevel)
	}
	if !set["tls-cert"] && ks.TLS {
		cert, key, err := c.TLSFiles()
		if err != nil {
			return fmt.Errorf("%s is https: %w", ks.InternalURL, err)
		}
		o.tlsCert, o.tlsKey = cert, key
	}
	return nil
}

// storeConfig turns o into a keepstore configuration, translating the
// Arvados meanings of 0 in the trash settings into keepstore's.
func (o *serverOptions) storeConfig() (keepstore.Config, error) {
	switch {
	case o.trashLifetime < 0 || o.trashCheckInterval < 0:
		return keepstore.Config{}, errors.New("--blob-trash-lifetime and --blob-trash-check-interval cannot be negative")
	case o.trashConcurrency < 0:
		return keepstore.Config{}, errors.New("--blob-trash-concurrency cannot be negative")
	case o.pullConcurrency < 1:
		return keepstore.Config{}, fmt.Errorf("--blob-replicate-concurrency %d: want at least 1", o.pullConcurrency)
	}
	never := func(d time.Duration) time.Duration { // 0 -> keepstore's "none"
		if d == 0 {
			return -1
		}
		return d
	}
	return keepstore.Config{
		Volumes:               o.volumes,
		SigningKey:            o.signingKey,
		SigningTTL:            o.signingTTL,
		RequireSignatures:     o.requireSigs,
		SystemToken:           o.systemToken,
		ManagementToken:       o.managementToken,
		DisableTrash:          !o.trash || o.trashConcurrency == 0,
		TrashLifetime:         never(o.trashLifetime),
		TrashCheckInterval:    never(o.trashCheckInterval),
		TrashConcurrency:      o.trashConcurrency,
		PullConcurrency:       o.pullConcurrency,
		MaxConcurrentRequests: o.maxRequests,
	}, nil
}

// arvadosLogLevel maps an Arvados SystemLogs.LogLevel (panic, fatal,
// error, warn, warning, info, debug, trace) to a slog level name.
func arvadosLogLevel(l string) string {
	switch strings.ToLower(l) {
	case "trace":
		return "debug"
	case "panic", "fatal":
		return "error"
	case "warning":
		return "warn"
	}
	return l
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

// srvFormatBytes writes n with the largest of the suffixes K, M, G, T
// (powers of 1024) that divides it, as srvParseBytes reads it back.
func srvFormatBytes(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	suffix := ""
	for _, s := range []string{"K", "M", "G", "T"} {
		if n == 0 || n%1024 != 0 {
			break
		}
		n, suffix = n/1024, s
	}
	return sign + strconv.FormatInt(n, 10) + suffix
}
