package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestStart writes a table and reads it back, checks that the server
// listens on no TCP address, and that the end of the test stops it and
// removes its directory.
func TestStart(t *testing.T) {
	var dir, dsn string
	t.Run("server", func(t *testing.T) {
		dsn = Start(t)
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		dir = cfg.Host
		if !strings.HasPrefix(dir, "/") || cfg.Database != Database || cfg.User != User {
			t.Fatalf("DSN %s: host %q database %q user %q", dsn, cfg.Host, cfg.Database, cfg.User)
		}
		if _, err := os.Stat(filepath.Join(dir, ".s.PGSQL.5432")); err != nil {
			t.Fatal(err)
		}

		conn := connect(t, dsn)
		ctx := context.Background()
		var listen, db string
		if err := conn.QueryRow(ctx, "SELECT current_setting('listen_addresses'), current_database()").Scan(&listen, &db); err != nil {
			t.Fatal(err)
		}
		if listen != "" || db != Database {
			t.Fatalf("listen_addresses %q, database %q; want no TCP and %q", listen, db, Database)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE blocks (locator text PRIMARY KEY, replicas int NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"acbd18db4cc2f85cedef654fccc4a4d8+3": 2, "d41d8cd98f00b204e9800998ecf8427e+0": 3}
		for loc, n := range want {
			if _, err := conn.Exec(ctx, "INSERT INTO blocks (locator, replicas) VALUES ($1, $2)", loc, n); err != nil {
				t.Fatal(err)
			}
		}
		rows, _ := conn.Query(ctx, "SELECT locator, replicas FROM blocks ORDER BY locator")
		got := map[string]int{}
		var loc string
		var n int
		if _, err := pgx.ForEachRow(rows, []any{&loc, &n}, func() error { got[loc] = n; return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("read back %v, want %v", got, want)
		}
		// A duplicate key is the server's error, as in production.
		_, err = conn.Exec(ctx, "INSERT INTO blocks (locator, replicas) VALUES ($1, 1)", "d41d8cd98f00b204e9800998ecf8427e+0")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			t.Fatalf("duplicate insert: %v, want unique_violation (23505)", err)
		}
	})
	if dir == "" {
		return // skipped
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the test, %s: %v; want it removed", dir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		conn.Close(ctx)
		t.Error("the server still accepts connections after the test")
	}
}

// TestParallel runs servers side by side: each its own, sharing nothing.
func TestParallel(t *testing.T) {
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			conn := connect(t, Start(t))
			ctx := context.Background()
			if _, err := conn.Exec(ctx, "CREATE TABLE t (n int)"); err != nil {
				t.Fatal(err) // would fail on a shared server
			}
			if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1)", i); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT sum(n) FROM t").Scan(&n); err != nil || n != i {
				t.Fatalf("sum %d, %v; want %d", n, err, i)
			}
		})
	}
}

// fakeTB records how Start ends a test instead of ending the real one.
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runStart(t *testing.T) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); Start(f) }()
	<-done
	return f
}

// TestUnusableEnv: KEEP_TEST_POSTGRES naming no PostgreSQL fails the
// test, never skips it, so CI cannot pass without running these tests.
func TestUnusableEnv(t *testing.T) {
	t.Setenv(EnvBinDir, t.TempDir())
	if _, err := BinDir(); err == nil || errors.Is(err, ErrNotInstalled) {
		t.Fatalf("BinDir with %s naming an empty directory: %v; want an error other than ErrNotInstalled", EnvBinDir, err)
	}
	f := runStart(t)
	if !f.failed || f.skipped || !strings.Contains(f.msg, EnvBinDir) {
		t.Fatalf("Start: failed %v, skipped %v, %q; want a failure naming %s", f.failed, f.skipped, f.msg, EnvBinDir)
	}
}

// TestNotInstalledSkips: with no PostgreSQL and KEEP_TEST_POSTGRES
// unset, the test is skipped with a message that says what is missing
// and how to install it.
func TestNotInstalledSkips(t *testing.T) {
	t.Setenv(EnvBinDir, "")
	defer func(old string) { installed = old }(installed)
	installed = filepath.Join(t.TempDir(), "*", "bin")
	if _, err := BinDir(); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("BinDir with nothing installed: %v, want ErrNotInstalled", err)
	}
	f := runStart(t)
	if !f.skipped || !strings.HasPrefix(f.msg, "SKIPPING POSTGRESQL TESTS: ") || !strings.Contains(f.msg, "apt-get install postgresql") {
		t.Fatalf("Start: skipped %v, %q", f.skipped, f.msg)
	}
}

func TestNewestFirst(t *testing.T) {
	dirs := []string{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/10/bin"}
	for i := range dirs {
		for j := range dirs {
			if i != j && newer(dirs[i], dirs[j]) == newer(dirs[j], dirs[i]) {
				t.Fatalf("newer(%s, %s) == newer(%s, %s)", dirs[i], dirs[j], dirs[j], dirs[i])
			}
		}
	}
	if !newer(dirs[2], dirs[1]) || !newer(dirs[1], dirs[3]) || !newer(dirs[3], dirs[0]) {
		t.Fatal("want 16 > 15 > 10 > 9.6")
	}
}
