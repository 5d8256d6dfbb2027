package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/arvconfig"
	"github.com/keepproject/keep/internal/bytesize"
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

// volumeList is a repeatable volume flag.
type volumeList []string

func (d *volumeList) String() string { return strings.Join(*d, ",") }

func (d *volumeList) Set(v string) error {
	if v == "" {
		return errors.New("empty volume")
	}
	*d = append(*d, v)
	return nil
}

// rateFlag is a byte rate flag: a size as --capacity takes it, or a
// negative number.
type rateFlag int64

func (r *rateFlag) String() string { return bytesize.Format(int64(*r)) }

func (r *rateFlag) Set(v string) error {
	if rest, neg := strings.CutPrefix(v, "-"); neg {
		n, err := bytesize.Parse(rest)
		if err != nil {
			return err
		}
		*r = rateFlag(-max(n, 1))
		return nil
	}
	n, err := bytesize.Parse(v)
	*r = rateFlag(n)
	return err
}

// serverFlags is keep server's command line.
type serverFlags struct {
	s                  arvconfig.ServerSettings // the settings flags give as they are
	config             configFlags
	addrFile           string
	volumes, roVolumes volumeList
	capacity, classes  string
	keyFile            string
	sysTokenFile       string
	mgmtTokenFile      string
	maxWrites          int
	minRate            rateFlag
	grace              time.Duration
	registry           string
	noSync             bool
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	f.config.register(fs, "settings", "server", "Keepstore")
	fs.StringVar(&f.s.Listen, "listen", "127.0.0.1:25107", "`address` to listen on; port 0 picks a free one (Arvados: the host and port of this server's Services.Keepstore.InternalURLs entry, or of its ListenURL)")
	fs.StringVar(&f.addrFile, "addr-file", "", "write the bound address to this `file` (useful with --listen :0)")
	fs.Var(&f.volumes, "volume", "store blocks in the volume at `URL`, a directory or a URL of a form above (repeatable); with --config, --volume and --read-only-volume replace the file's volumes (Arvados: Volumes.*.Driver and DriverParameters, such as DriverParameters.Root)")
	fs.Var(&f.roVolumes, "read-only-volume", "serve blocks from the volume at `URL` without writing (repeatable) (Arvados: Volumes.*.ReadOnly)")
	fs.StringVar(&f.capacity, "capacity", "", "limit each volume to `size` bytes of blocks (suffixes K, M, G, T = powers of 1024; KB, MB, GB, TB = powers of 1000)")
	fs.StringVar(&f.classes, "classes", "", "comma-separated storage `classes` of every volume, replacing those from --config; without either, \"default\" (Arvados: Volumes.*.StorageClasses)")
	fs.StringVar(&f.keyFile, "signing-key-file", "", "sign returned locators with the blob signing key in `file` (Arvados: Collections.BlobSigningKey)")
	fs.DurationVar(&f.s.SigningTTL, "signing-ttl", keepstore.DefaultSigningTTL, "how long a signature stays valid; copies younger than this are never trashed (Arvados: Collections.BlobSigningTTL)")
	fs.BoolVar(&f.s.RequireSignatures, "require-signatures", false, "require valid signatures on GET and HEAD; needs a signing key (Arvados: Collections.BlobSigning, which defaults to true there)")
	fs.StringVar(&f.sysTokenFile, "system-token-file", "", "the token in `file` opens the admin routes: block listings (/index, /mounts), pull and trash lists, DELETE, untrash (Arvados: SystemRootToken)")
	fs.StringVar(&f.mgmtTokenFile, "management-token-file", "", "the token in `file` opens /metrics, /_status and /_health/*, which answer 404 without one (Arvados: ManagementToken)")
	f.registerTrash(fs)
	fs.IntVar(&f.s.MaxRequests, "max-requests", keepstore.DefaultMaxConcurrentRequests, "reads (GET, HEAD) and index listings handled at once; more get 503 with Retry-After (Arvados: API.MaxConcurrentRequests; 0 there means this default)")
	fs.IntVar(&f.maxWrites, "max-writes", keepstore.DefaultMaxConcurrentWrites, "uploads (PUT) handled at once; beyond that a new upload takes the slot of one lagging below --min-upload-rate, or gets 503 with Retry-After")
	f.minRate = rateFlag(keepstore.DefaultMinUploadRate)
	fs.Var(&f.minRate, "min-upload-rate", "slowest an upload body may arrive, in `bytes/s` (suffixes as --capacity); a slower upload gets 408 and nothing is stored; 0 means the default, a negative value no minimum")
	fs.DurationVar(&f.grace, "upload-grace", keepstore.DefaultUploadGrace, "waiting for an upload's body allowed on top of --min-upload-rate (for a slow start or a pause)")
	fs.StringVar(&f.s.TLSCert, "tls-cert", "", "serve HTTPS with the certificate in `file`; needs --tls-key (Arvados: TLS.Certificate, used when this server's URL is https)")
	fs.StringVar(&f.s.TLSKey, "tls-key", "", "private key `file` for --tls-cert (Arvados: TLS.Key)")
	fs.StringVar(&f.s.LogLevel, "log-level", "info", "log `level`: debug, info, warn or error (Arvados: SystemLogs.LogLevel)")
	fs.StringVar(&f.registry, "registry", "", registryHelp+"; without it any token may PUT, and GET and HEAD need only what --require-signatures asks")
	fs.BoolVar(&f.noSync, "no-sync", false, "for measuring only: answer uploads to directory volumes before the data is on disk, so a crash can lose acknowledged blocks")
}

// registerTrash registers the trash and pull flags, which take the
// Arvados meanings of 0.
func (f *serverFlags) registerTrash(fs *flag.FlagSet) {
	fs.BoolVar(&f.s.Trash, "blob-trash", true, "act on trash lists and DELETE; false: DELETE answers 405 and trash list items are skipped (Arvados: Collections.BlobTrash)")
	fs.DurationVar(&f.s.TrashLifetime, "blob-trash-lifetime", keepstore.DefaultTrashLifetime, "how long a trashed block can be restored before it is deleted; 0 deletes at once (Arvados: Collections.BlobTrashLifetime)")
	fs.DurationVar(&f.s.TrashCheckInterval, "blob-trash-check-interval", keepstore.DefaultTrashCheckInterval, "how often trash past its lifetime and stale temporary files are deleted; 0 never (Arvados: Collections.BlobTrashCheckInterval)")
	fs.IntVar(&f.s.TrashConcurrency, "blob-trash-concurrency", keepstore.DefaultTrashConcurrency, "trash list workers; 0 turns trashing off, as --blob-trash=false (Arvados: Collections.BlobTrashConcurrency)")
	fs.IntVar(&f.s.PullConcurrency, "blob-replicate-concurrency", keepstore.DefaultPullConcurrency, "pull list workers, at least 1 (Arvados: Collections.BlobReplicateConcurrency)")
}

// check refuses a command line keep server cannot run with.
func (f *serverFlags) check(fs *flag.FlagSet, pos []string) error {
	if len(pos) != 0 || (len(f.volumes)+len(f.roVolumes) == 0 && f.config.file == "") || (f.s.TLSCert == "") != (f.s.TLSKey == "") {
		fmt.Fprintln(fs.Output(), "keep server: need --config or at least one --volume or --read-only-volume, no arguments, and --tls-cert with --tls-key")
		fs.Usage()
		return errUsage
	}
	return f.config.check(fs, flagsSet(fs))
}

// serverOptions is what keep server runs with: the flags, filled in
// from --config where a flag was not given.
type serverOptions struct {
	arvconfig.ServerSettings
	registry      string // --registry: the token registry's host[:port], or ""
	addrFile      string
	maxWrites     int
	minUploadRate int64
	uploadGrace   time.Duration
}

// options reads the files the flags name (secrets, --config) and
// returns the options; set holds the names of the flags given.
func (f *serverFlags) options(set map[string]bool) (*serverOptions, error) {
	o := &serverOptions{ServerSettings: f.s, registry: f.registry, addrFile: f.addrFile,
		maxWrites: f.maxWrites, minUploadRate: int64(f.minRate), uploadGrace: f.grace}
	var capBytes int64
	if f.capacity != "" {
		n, err := bytesize.Parse(f.capacity)
		if err != nil {
			return nil, fmt.Errorf("--capacity: %w", err)
		}
		capBytes = n
	}
	for i, list := range [][]string{f.volumes, f.roVolumes} {
		for _, url := range list {
			p, err := keepstore.ParseVolume(url)
			if err != nil {
				return nil, err
			}
			o.Volumes = append(o.Volumes, keepstore.VolumeConfig{Params: p, ReadOnly: i == 1, NoSync: f.noSync})
		}
	}
	if err := f.readSecrets(&o.ServerSettings); err != nil {
		return nil, err
	}
	if f.config.file != "" {
		if err := f.fromConfig(&o.ServerSettings, set); err != nil {
			return nil, fmt.Errorf("--config %s: %w", f.config.file, err)
		}
	}
	for i := range o.Volumes {
		o.Volumes[i].Capacity = capBytes
		if set["classes"] {
			o.Volumes[i].Classes = strings.Split(f.classes, ",")
		}
	}
	if o.RequireSignatures && len(o.SigningKey) == 0 {
		return nil, errors.New("signatures are required (--require-signatures, or Collections.BlobSigning in --config) but there is no signing key")
	}
	return o, nil
}

// readSecrets reads the signing key and tokens from the files the flags
// name into s.
func (f *serverFlags) readSecrets(s *arvconfig.ServerSettings) error {
	var key string
	for _, sec := range []struct {
		flag, path string
		dst        *string
	}{
		{"signing-key-file", f.keyFile, &key},
		{"management-token-file", f.mgmtTokenFile, &s.ManagementToken},
		{"system-token-file", f.sysTokenFile, &s.SystemToken},
	} {
		if sec.path == "" {
			continue
		}
		v, err := readSecret(sec.path)
		if err != nil {
			return fmt.Errorf("--%s: %w", sec.flag, err)
		}
		*sec.dst = v
	}
	if key != "" {
		s.SigningKey = []byte(key)
	}
	return nil
}

// fromConfig fills in s from the --config file, leaving alone the
// settings of the flags in set.
func (f *serverFlags) fromConfig(s *arvconfig.ServerSettings, set map[string]bool) error {
	c, ks, err := loadConfig(&f.config, (*arvconfig.Cluster).Self)
	if err != nil {
		return err
	}
	return c.FillServer(s, ks, set)
}

func runServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("server", "", serverSummary(), stderr)
	var f serverFlags
	if err := parseLeadingFlags(fs, &f, args); err != nil {
		return err
	}
	o, err := f.options(flagsSet(fs))
	if err != nil {
		return err
	}
	var checker *apiauth.Checker
	if o.registry != "" {
		if checker, err = newTokenChecker(o.registry); err != nil {
			return usageError(fs, "--registry: %v", err)
		}
		defer checker.CloseIdleConnections()
	}
	return o.run(ctx, checker, stderr)
}

// run serves blocks until ctx ends, checking tokens with checker if it
// is not nil, and logging to stderr.
func (o *serverOptions) run(ctx context.Context, checker *apiauth.Checker, stderr io.Writer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return fmt.Errorf("log level %q: want debug, info, warn or error", o.LogLevel)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("keep server starting", "version", version.String())

	cfg, err := o.StoreConfig()
	if err != nil {
		return err
	}
	cfg.MaxConcurrentWrites, cfg.MinUploadRate, cfg.UploadGrace, cfg.Logger = o.maxWrites, o.minUploadRate, o.uploadGrace, log
	if checker != nil {
		cfg.TokenChecker = checker
	}
	ks, err := keepstore.NewWithContext(ctx, cfg)
	if err != nil {
		return err
	}
	defer ks.Close() // closes the volumes too

	l, err := listenTLS(o.Listen, o.TLSCert, o.TLSKey)
	if err != nil {
		return err
	}
	if err := writeAddrFile(o.addrFile, l); err != nil {
		return err
	}
	o.logListening(log, l.Addr().String(), ks.Status(ctx).Volumes)
	return serve(ctx, l, ks, log)
}

// logListening logs the server's settings and which tokens it accepts,
// once it listens at addr with volumes.
func (o *serverOptions) logListening(log *slog.Logger, addr string, volumes []keepstore.VolumeStatus) {
	ro, missing := 0, 0
	for _, v := range volumes {
		switch {
		case v.Missing:
			missing++
		case v.ReadOnly:
			ro++
		}
	}
	attrs := []any{"addr", addr, "tls", o.TLSCert != "",
		"volumes", len(o.Volumes) - ro - missing, "read_only_volumes", ro, "missing_volumes", missing,
		"signing", len(o.SigningKey) > 0, "require_signatures", o.RequireSignatures,
		"trash", o.Trash && o.TrashConcurrency > 0, "management_routes", o.ManagementToken != ""}
	if o.InternalURL != "" {
		attrs = append(attrs, "internal_url", o.InternalURL)
	}
	attrs = append(attrs, "version", version.String())
	if o.registry != "" {
		log.Info("keep server tokens", "registry", o.registry, "accepted", o.acceptedTokens())
	} else {
		log.Info("keep server tokens", "accepted", o.acceptedTokens())
	}
	log.Info("keep server listening", attrs...)
}

// acceptedTokens says, for the start-up log, which tokens the server
// accepts for what.
func (o *serverOptions) acceptedTokens() string {
	var s string
	switch {
	case o.registry != "":
		s = "tokens the registry knows: read tokens may GET and HEAD blocks, write tokens may also PUT them"
	case o.RequireSignatures:
		s = "any token may PUT blocks (no --registry); GET and HEAD need a signature valid for their token"
	default:
		s = "any token may PUT blocks (no --registry); GET and HEAD need no token"
	}
	if o.registry != "" && o.RequireSignatures {
		s += ", with a signature valid for their token"
	}
	if o.SystemToken != "" {
		return s + "; the system token may do everything, including the admin routes"
	}
	return s + "; the admin routes are closed (no system token)"
}
