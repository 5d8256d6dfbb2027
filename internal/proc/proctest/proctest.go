// Package proctest runs the keep binary in tests: built once per test
// binary, in an environment isolated from the user's, its processes
// stopped when the test ends. Package proc does the work; this package
// adds the binary and the testing.TB helpers.
//
// A test binary that uses Binary calls RemoveBinary from its TestMain
// once the tests have run.
package proctest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc"
)

// Timeout bounds every wait of this package: for a process to be ready,
// for a line of output, for a process to stop after SIGTERM. It guards
// against hangs; nothing waits for it to pass.
const Timeout = time.Minute

// The keep binary, built on first use.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of the keep binary, built on first use once
// per test binary, and skips the test in -short mode. It is built without
// -race even when the tests run with it: the processes are the subject,
// and the race detector would make them several times slower without
// checking more than their own packages' tests do.
func Binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the keep binary; skipped in -short mode")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keep-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "keep")
		buildErr = Build(binPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RemoveBinary removes the binary Binary built, if it built one. Call it
// from TestMain after the tests.
func RemoveBinary() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// Build builds the keep command into the file out, with env added to
// the environment of go build (such as "CGO_ENABLED=0").
func Build(out string, env ...string) error {
	cmd := exec.Command("go", "build", "-o", out, "github.com/keepproject/keep/cmd/keep")
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s go build: %v\n%s", strings.Join(env, " "), err, b)
	}
	return nil
}

// Env returns an environment isolated from the user's configuration,
// for processes a test runs: this process's environment without the
// ARVADOS_ variables (the cluster keep would talk to), KEEP_TOKEN (the
// token put, get and bench would send: a test that wants one adds its
// own), HOME and the XDG_ variables, and with HOME and the XDG state and
// cache directories (where keep put keeps its resume cache and keep up
// its services file) in a new temporary directory.
func Env(t testing.TB) []string {
	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ARVADOS_") || strings.HasPrefix(name, "XDG_") || name == "HOME" || name == "KEEP_TOKEN" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir, "XDG_STATE_HOME="+filepath.Join(dir, "state"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
}

// Command returns a command running keep with args in env.
func Command(t testing.TB, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = env
	return cmd
}

// Run runs keep with args in env to its end, with stdin as its standard
// input (none if nil), and returns its standard output and error; err is
// non-nil if it exits non-zero. Once Binary has succeeded, Run may be
// called from any goroutine.
func Run(t testing.TB, env []string, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := Command(t, env, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err = cmd.Run()
	return o.String(), e.String(), err
}

// Start starts keep with args in env, its output in a Log that keeps all
// of it, and waits until a line of that output matches the regular
// expression ready (not at all if ready is ""). When the test ends the
// process is stopped with SIGTERM (so that keep up stops the processes it
// started), and killed if it has not exited within Timeout.
func Start(t testing.TB, env []string, ready string, args ...string) *proc.Process {
	t.Helper()
	p, err := proc.Start(Command(t, env, args...), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(Timeout) })
	if ready != "" {
		WaitLine(t, p, ready)
	}
	return p
}

// Listen starts keep with args in env and "--addr-file FILE" appended,
// waits until a line of its output matches the regular expression ready,
// and returns the process and the address it bound. The process is
// stopped when the test ends, as by Start.
func Listen(t testing.TB, env []string, ready string, args ...string) (*proc.Process, netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	p, addr, err := proc.Listen(ctx, Command(t, env, args...), nil, filepath.Join(t.TempDir(), "addr"), regexp.MustCompile(ready))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(Timeout) })
	return p, addr
}

// A LineWaiter is a *proc.Log or a *proc.Process.
type LineWaiter interface {
	WaitLine(ctx context.Context, re *regexp.Regexp) ([]string, error)
}

// WaitLine waits until a line of w's output matches the regular
// expression pattern and returns the match and its submatches. It fails
// the test, with the output, if the output ends or Timeout passes first.
func WaitLine(t testing.TB, w LineWaiter, pattern string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	m, err := w.WaitLine(ctx, regexp.MustCompile(pattern))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
