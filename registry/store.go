// Package registry is the collection registry: the one record of what a
// cluster without an Arvados API server must keep. It holds collections
// (a name, a manifest stored without signatures, its portable data
// hash, the replication wanted, when it goes to the trash and when it is
// deleted) and the tokens the cluster accepts, in an embedded SQLite
// file or a PostgreSQL database, and serves them through the subset of
// the Arvados API that keep's tools and Arvados' own use (see Handler).
package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"modernc.org/sqlite"               // database/sql driver "sqlite", pure Go
	sqlite3 "modernc.org/sqlite/lib"
)

// Store is a registry database. Its methods are safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect dialect
	desc    string // for messages: the database without credentials
}

// dialect is what differs between the two databases.
type dialect struct {
	name string
	// text is the column type of strings compared byte by byte, as the
	// paging by uuid and Go's own comparisons expect.
	text string
	// numbered says placeholders are $1, $2, ... rather than ?.
	numbered bool
}

var (
	sqliteDialect   = dialect{name: "sqlite", text: "TEXT"}
	postgresDialect = dialect{name: "postgres", text: `TEXT COLLATE "C"`, numbered: true}
)

// Open opens (and, if need be, creates) the registry database named by
// dsn: a postgres:// or postgresql:// URL for PostgreSQL, anything else
// a path of a SQLite file (a "sqlite:" prefix is allowed).
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s.dialect = postgresDialect
		s.desc = "PostgreSQL database " + redact(dsn)
		s.db, err = sql.Open("pgx", dsn)
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, errors.New("no registry database given")
		}
		s.dialect = sqliteDialect
		s.desc = "SQLite database " + path
		// One connection: SQLite has one writer anyway, and a single
		// connection never waits on itself. Others (keep token) wait up
		// to busy_timeout for the lock.
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		// LIKE is case-sensitive, as in PostgreSQL; ilike is not.
		q.Add("_pragma", "case_sensitive_like(1)")
		s.db, err = sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err == nil {
			s.db.SetMaxOpenConns(1)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("opening the %s: %w", s.desc, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("opening the %s: %w", s.desc, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// String names the database, without credentials.
func (s *Store) String() string { return s.desc }

// redact drops the password from a database URL.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.Redacted()
}

// migrate creates the tables that do not exist yet.
func (s *Store) migrate(ctx context.Context) error {
	t := s.dialect.text
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS collections (
			uuid ` + t + ` PRIMARY KEY,
			name ` + t + ` NOT NULL,
			description ` + t + ` NOT NULL,
			properties ` + t + ` NOT NULL,
			manifest_text ` + t + ` NOT NULL,
			portable_data_hash ` + t + ` NOT NULL,
			replication_desired INTEGER,
			storage_classes_desired ` + t + ` NOT NULL,
			created_at BIGINT NOT NULL,
			modified_at BIGINT NOT NULL,
			modified_by ` + t + ` NOT NULL,
			trash_at BIGINT,
			delete_at BIGINT)`,
		`CREATE INDEX IF NOT EXISTS collections_pdh ON collections (portable_data_hash)`,
		`CREATE INDEX IF NOT EXISTS collections_name ON collections (name)`,
		// A name is taken once among the collections not in the trash,
		// as in Arvados (where it is per owner; here there is one).
		`CREATE UNIQUE INDEX IF NOT EXISTS collections_live_name ON collections (name) WHERE trash_at IS NULL AND name <> ''`,
		`CREATE TABLE IF NOT EXISTS tokens (
			name ` + t + ` PRIMARY KEY,
			secret_sha256 ` + t + ` NOT NULL UNIQUE,
			scope ` + t + ` NOT NULL,
			created_at BIGINT NOT NULL,
			revoked_at BIGINT)`,
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("creating the tables: %w", err)
		}
	}
	return nil
}

// q rewrites a query written with ? placeholders for the dialect.
func (s *Store) q(query string) string {
	if !s.dialect.numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// isUniqueViolation reports whether err is a unique (or primary key)
// constraint failing, in either database.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505" // unique_violation
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
