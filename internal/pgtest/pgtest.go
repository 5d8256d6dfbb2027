// Package pgtest runs a real PostgreSQL server for tests: a fresh
// cluster (initdb) in a temporary directory, listening only on a Unix
// socket in that directory, never on a TCP port, stopped and removed
// when the test ends. Tests skip loudly when PostgreSQL is not installed,
// and fail when KEEP_TEST_POSTGRES (which .ci/run sets) names binaries
// that cannot be used, so that CI never skips them silently.
//
// A Unix socket keeps the port rule without a port: no port is chosen,
// so no other program can be answering in the server's place, and the
// socket's directory is private to the server's user, which is why the
// cluster can trust every connection without a password.
//
// PostgreSQL refuses to run as root. When the tests run as root (as in
// CI containers), initdb and postgres run as the user "postgres", which
// Debian's package creates, and the directory is given to that user.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvBinDir is the environment variable naming the directory that holds
// initdb and postgres (for example /usr/lib/postgresql/15/bin). When it
// is set, a server that cannot be started fails the test, never skips it.
const EnvBinDir = "KEEP_TEST_POSTGRES"

// InstallHint says how to make PostgreSQL available to the tests.
const InstallHint = "apt-get install postgresql (Debian/Ubuntu), or set " + EnvBinDir + " to the directory holding initdb and postgres"

// ErrNotInstalled means no PostgreSQL binaries were found (and
// KEEP_TEST_POSTGRES is not set).
var ErrNotInstalled = errors.New("no PostgreSQL found in /usr/lib/postgresql/*/bin; install it with: " + InstallHint)

// Database, User and SystemUser name what Start creates and runs as.
const (
	// Database is the database Start creates; its DSN names it.
	Database = "keep"
	// User is the cluster's superuser, whom the DSN names.
	User = "keep"
	// SystemUser is the operating-system user that runs the server when
	// the tests run as root.
	SystemUser = "postgres"
)

// startTimeout bounds initdb and the wait for the server to accept
// connections; stopTimeout bounds the wait for it to exit.
const (
	startTimeout = 2 * time.Minute
	stopTimeout  = 30 * time.Second
)

// installed is where Debian's packages put each version's programs.
var installed = "/usr/lib/postgresql/*/bin"

// needed are the programs BinDir requires.
var needed = []string{"initdb", "postgres"}

// BinDir returns the directory holding PostgreSQL's initdb and postgres:
// $KEEP_TEST_POSTGRES if set (an error if it lacks them), else the
// newest /usr/lib/postgresql/*/bin that has them (Debian's layout), else
// ErrNotInstalled.
func BinDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if err := usable(dir); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinDir, dir, err)
		}
		return dir, nil
	}
	dirs, _ := filepath.Glob(installed)
	sort.Slice(dirs, func(i, j int) bool { return newer(dirs[i], dirs[j]) })
	for _, dir := range dirs {
		if usable(dir) == nil {
			return dir, nil
		}
	}
	return "", ErrNotInstalled
}

// usable says why dir cannot serve, or nil.
func usable(dir string) error {
	for _, name := range needed {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("no %s: %w", name, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", p)
		}
	}
	return nil
}

// newer orders /usr/lib/postgresql/VERSION/bin directories newest first,
// by version numbers (so 15 comes before 9.6).
func newer(a, b string) bool {
	va, vb := version(a), version(b)
	for i := 0; i < len(va) && i < len(vb); i++ {
		if va[i] != vb[i] {
			return va[i] > vb[i]
		}
	}
	if len(va) != len(vb) {
		return len(va) > len(vb)
	}
	return a > b
}

func version(binDir string) []int {
	var v []int
	for _, f := range strings.Split(filepath.Base(filepath.Dir(binDir)), ".") {
		n, err := strconv.Atoi(f)
		if err != nil {
			break
		}
		v = append(v, n)
	}
	return v
}

// Start runs a fresh PostgreSQL cluster until t ends and returns a DSN
// for pgx (and libpq) naming its database Database as User, for example
// postgres:///keep?host=%2Ftmp%2Fpgtest123&user=keep&sslmode=disable.
// Each call starts its own server, so parallel tests do not share one.
// It skips t when PostgreSQL is not installed, and fails t when
// KEEP_TEST_POSTGRES is set but unusable or the server does not start.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := BinDir()
	if errors.Is(err, ErrNotInstalled) {
		t.Skipf("SKIPPING POSTGRESQL TESTS: %v", err)
	}
	if err != nil {
		t.Fatalf("PostgreSQL for tests: %v", err)
	}
	s, err := start(bin)
	if s != nil {
		t.Cleanup(func() {
			s.stop()
			if t.Failed() {
				t.Logf("PostgreSQL log (%s):\n%s", s.dir, s.log())
			}
			os.RemoveAll(s.dir)
		})
	}
	if err != nil {
		t.Fatalf("PostgreSQL for tests: %v", err)
	}
	return s.dsn
}

// server is a running cluster.
type server struct {
	dir     string // the socket directory, holding data/ and postgres.log
	dsn     string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	logPath string
}

// start creates a cluster with bin's initdb and runs bin's postgres on
// it. A non-nil server, even with an error, owns a directory (and maybe
// a process) that stop and os.RemoveAll must clean up.
func start(bin string) (*server, error) {
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := tempDir(cred != nil)
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, logPath: filepath.Join(dir, "postgres.log")}
	// The socket is dir/.s.PGSQL.5432; a socket's path is limited to
	// about 100 bytes.
	if sock := filepath.Join(dir, ".s.PGSQL.5432"); len(sock) > 100 {
		return s, fmt.Errorf("socket path %s is too long for a Unix socket; set TMPDIR to a shorter directory", sock)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return s, err
		}
	}
	data := filepath.Join(dir, "data")
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LC_ALL=C", "TZ=UTC"}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"--pgdata", data, "--username", User, "--auth", "trust",
		"--encoding", "UTF8", "--no-locale", "--no-sync")
	initdb.Env, initdb.Dir = env, dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return s, fmt.Errorf("%s: %v\n%s", initdb, err, out)
	}

	logFile, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return s, err
	}
	defer logFile.Close() // the child has its own copy
	// No TCP at all (listen_addresses empty): only the socket in dir.
	// Durability is not wanted of a cluster that lives for one test.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=",
		"-c", "unix_socket_directories="+dir,
		"-c", "unix_socket_permissions=0700",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "logging_collector=off",
		"-c", "log_destination=stderr")
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that a postmaster that will not stop can
	// be killed with its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return s, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(s.exited) }()

	q := url.Values{"host": {dir}, "user": {User}, "sslmode": {"disable"}}
	admin := "postgres:///postgres?" + q.Encode()
	conn, err := s.connect(ctx, admin)
	if err != nil {
		return s, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{Database}.Sanitize()); err != nil {
		return s, fmt.Errorf("creating database %s: %w", Database, err)
	}
	s.dsn = "postgres:///" + Database + "?" + q.Encode()
	return s, nil
}

// connect tries to connect until the server accepts, it exits, or ctx
// ends: a bounded retry, not a guess at how long the start takes.
func (s *server) connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attempt, dsn)
		cancel()
		if err == nil {
			return conn, nil
		}
		last = err
		select {
		case <-s.exited:
			return nil, fmt.Errorf("postgres exited at start (%v):\n%s", s.cmd.ProcessState, s.log())
		case <-ctx.Done():
			return nil, fmt.Errorf("postgres did not accept connections on %s within %v (last: %v):\n%s", s.dir, startTimeout, last, s.log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop shuts the server down at once (SIGQUIT: an immediate shutdown, as
// pg_ctl stop -m immediate sends) and waits for it; if it has not exited
// within stopTimeout, its process group is killed.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}

// log returns the server's log so far.
func (s *server) log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// credential returns the user to run PostgreSQL as: nil (this process's
// own) unless this process is root, which PostgreSQL refuses to run as;
// then SystemUser.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(SystemUser)
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root; no user %q to run it as (%v): run the tests as another user, or create %q (Debian's postgresql package does)", SystemUser, err, SystemUser)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %q has uid %q, gid %q: not numbers", SystemUser, u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// tempDir makes the server's directory: short, since the socket lives
// in it. For another user (other), every directory above it must be
// searchable by all; if os.TempDir()'s are not, /tmp is used.
func tempDir(other bool) (string, error) {
	base := os.TempDir()
	if other && !searchable(base) {
		if !searchable("/tmp") {
			return "", fmt.Errorf("neither %s nor /tmp can be reached by user %q, who must run PostgreSQL; set TMPDIR to a directory it can reach", base, SystemUser)
		}
		base = "/tmp"
	}
	return os.MkdirTemp(base, "pgtest")
}

// searchable says whether every directory from / to dir may be searched
// by any user (so that another user can reach files below dir).
func searchable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}
