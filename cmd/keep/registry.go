package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/keepproject/keep/internal/version"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/registry"
)

const registrySummary = `Run the collection registry: the record of every collection (its manifest,
the copies it wants, when it goes to the trash) and of the tokens the
cluster accepts, served over HTTPS as the part of the Arvados API that
keep's tools and Arvados' own use. Clients reach it as an API server:
ARVADOS_API_HOST=HOST:PORT and ARVADOS_API_TOKEN (a token from 'keep token').

Manifests are stored without signatures and signed for the reader on every
read, with the block servers' key and TTL (--signing-key-file,
--signing-ttl: give the same as the servers), so data stays readable for
as long as it is kept. A manifest written must carry valid signatures for
the writer's token. Trashed collections are deleted for good at their
delete_at (--trash-lifetime after trashing); until then keep balance
--collections keeps their blocks.

The database is a SQLite file (--db PATH; created if missing) or
PostgreSQL (--db postgres://..., or --db-file FILE holding that URL when
it has a password).`

// clusterIDRE is an Arvados cluster id: the prefix of every uuid.
var clusterIDRE = regexp.MustCompile(`^[a-z0-9]{5}$`)

// registryFlags is keep registry's command line.
type registryFlags struct {
	db               dbFlags
	listen, addrFile string
	tlsCert, tlsKey  string
	keyFile          string
	ttl              time.Duration
	clusterID        string
	replication      int
	trashLifetime    time.Duration
	services         string
}

func (f *registryFlags) register(fs *flag.FlagSet) {
	f.db.register(fs)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:25110", "`address` to listen on")
	fs.StringVar(&f.addrFile, "addr-file", "", "write the bound address to this `file` (useful with --listen :0)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "the HTTPS certificate `file` (required: Arvados clients speak HTTPS to an API server)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key `file` for --tls-cert")
	fs.StringVar(&f.keyFile, "signing-key-file", "", "the block servers' blob signing key `file`: manifests are signed with it when read and checked with it when written (Arvados: Collections.BlobSigningKey)")
	fs.DurationVar(&f.ttl, "signing-ttl", keepstore.DefaultSigningTTL, "the block servers' signature lifetime (Arvados: Collections.BlobSigningTTL)")
	fs.StringVar(&f.clusterID, "cluster-id", "keep0", "five lowercase letters or digits: the prefix of every uuid (Arvados: ClusterID)")
	fs.IntVar(&f.replication, "default-replication", 2, "copies wanted of a collection that says none (Arvados: Collections.DefaultReplication)")
	fs.DurationVar(&f.trashLifetime, "trash-lifetime", 14*24*time.Hour, "how long a trashed collection can be recovered before it is deleted for good (Arvados: Collections.DefaultTrashLifetime)")
	fs.StringVar(&f.services, "services", "", "serve the block servers and proxies listed in this keep_services JSON `file` as keep_services/accessible, read again on every request")
}

// check refuses a command line keep registry cannot run with.
func (f *registryFlags) check(fs *flag.FlagSet, pos []string) error {
	switch {
	case len(pos) != 0:
		return usageError(fs, "takes no arguments")
	case f.tlsCert == "" || f.tlsKey == "":
		return usageError(fs, "needs --tls-cert and --tls-key: clients speak HTTPS to an API server")
	case !clusterIDRE.MatchString(f.clusterID):
		return usageError(fs, "--cluster-id %q: want five lowercase letters or digits", f.clusterID)
	case f.replication < 1 || f.replication > registry.MaxReplication:
		return usageError(fs, "--default-replication %d: want 1 to %d", f.replication, registry.MaxReplication)
	case f.ttl <= 0 || f.trashLifetime <= 0:
		return usageError(fs, "--signing-ttl and --trash-lifetime must be positive")
	}
	return nil
}

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("registry", "", registrySummary, stderr)
	var f registryFlags
	if _, err := parseFlags(fs, &f, args); err != nil {
		return err
	}
	dsn, err := f.db.dsn(fs)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	signer := locator.Signer{TTL: f.ttl}
	if f.keyFile != "" {
		key, err := readSecret(f.keyFile)
		if err != nil {
			return fmt.Errorf("--signing-key-file: %w", err)
		}
		signer.Key = []byte(key)
	} else {
		log.Warn("no --signing-key-file: manifests are served unsigned and written ones are not checked; servers that require signatures will refuse the reads")
	}
	store, err := registry.Open(ctx, dsn)
	if err != nil {
		return dbError(err)
	}
	defer store.Close()
	// The first sweep is a write: a database the registry may read but
	// not write (made by keep token run as another user, say) is found
	// now, not at the first collection recorded.
	if _, err := store.DeleteExpired(ctx, time.Now()); err != nil {
		return dbError(fmt.Errorf("the database cannot be written: %w", err))
	}
	return f.serve(ctx, store, signer, log)
}

// serve serves the registry of store until ctx ends, signing manifests
// with signer and deleting expired collections every minute.
func (f *registryFlags) serve(ctx context.Context, store *registry.Store, signer locator.Signer, log *slog.Logger) error {
	l, err := listenTLS(f.listen, f.tlsCert, f.tlsKey)
	if err != nil {
		return err
	}
	if err := writeAddrFile(f.addrFile, l); err != nil {
		return err
	}
	h := registry.NewHandler(registry.Config{
		Store: store, ClusterID: f.clusterID, Signer: signer, DefaultReplication: f.replication,
		TrashLifetime: f.trashLifetime, ServicesFile: f.services, Log: log,
	})
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		sweepDeleted(sweepCtx, store, time.Minute, log)
	}()
	defer func() { stopSweep(); <-sweepDone }()
	log.Info("keep registry listening", "addr", l.Addr().String(), "database", store.String(), "cluster_id", f.clusterID,
		"signing", len(signer.Key) > 0, "signing_ttl", f.ttl, "default_replication", f.replication, "version", version.String())
	return serveHTTP(ctx, l, &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, log)
}

// sweepDeleted deletes for good, at start and then every interval until
// ctx ends, the collections whose delete_at has come.
func sweepDeleted(ctx context.Context, store *registry.Store, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := store.DeleteExpired(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("deleting expired collections", "err", err)
		case n > 0:
			log.Info("deleted expired collections for good", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dbError adds to err, from the registry database, what to do when the
// database cannot be opened or written for want of permission: the
// SQLite file, its -wal and -shm files and their directory must belong
// to the user keep registry runs as, and keep token must run as that
// user too.
func dbError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if strings.Contains(msg, "readonly database") || strings.Contains(msg, "unable to open database file") {
		return fmt.Errorf("%w (the database file, its -wal and -shm files and their directory must be writable by the user running this command: run keep registry and keep token as the same user, e.g. sudo -u keep keep token ...)", err)
	}
	return err
}

// dbFlags name the registry database, for keep registry and keep token.
type dbFlags struct {
	db, dbFile string
}

func (f *dbFlags) register(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&f.db, "db", "", "the registry database: a SQLite file `path`, or a postgres:// URL")
	fs.StringVar(&f.dbFile, "db-file", "", "read the database path or URL from `file` (for a PostgreSQL URL holding a password)")
}

// dsn returns the database the flags name.
func (f *dbFlags) dsn(fs interface{ Name() string }) (string, error) {
	switch {
	case f.db != "" && f.dbFile != "":
		return "", fmt.Errorf("%s: --db and --db-file: give one", fs.Name())
	case f.dbFile != "":
		s, err := readSecret(f.dbFile)
		if err != nil {
			return "", fmt.Errorf("--db-file: %w", err)
		}
		return s, nil
	case f.db == "":
		return "", fmt.Errorf("%s: no database: give --db PATH (SQLite) or --db postgres://..., or --db-file FILE", fs.Name())
	}
	return f.db, nil
}
