package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
)

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// Usage mistakes get one line saying what is wrong, not the whole usage.
func TestE2EUsageErrors(t *testing.T) {
	env := proctest.Env(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"put", "--replicas", "0", "x"}, 2, "--replicas must be at least 1, not 0"},
		{[]string{"put"}, 2, "no PATH to store"},
		{[]string{"get", "a", "b"}, 2, "want one LOCATOR, MANIFEST_FILE or HASH/PATH, not 2 arguments"},
		{[]string{"get", "-f", "--skip-existing", "m"}, 2, "contradict"},
		{[]string{"ls"}, 2, "want one MANIFEST_FILE"},
		{[]string{"check", "--replicas", "0", "m"}, 2, "--replicas must be at least 1, not 0"},
		{[]string{"balance", "--replicas", "-1", "--gc", "m"}, 2, "--replicas must be at least 1, not -1"},
		{[]string{"put", "--name", "a/b", "x"}, 2, "holds a /"},
		{[]string{"put", "--name", "n", "--raw", "x"}, 2, "not with --store-manifest or --raw"},
		{[]string{"ls", "no such collection"}, 1, "set ARVADOS_API_HOST"},
		{[]string{"registry", "--db", "x.db"}, 2, "needs --tls-cert and --tls-key"},
		{[]string{"registry", "--tls-cert", "c", "--tls-key", "k", "--cluster-id", "ABC"}, 2, "--cluster-id"},
		{[]string{"token", "list"}, 1, "no database"},
		{[]string{"token", "create", "x"}, 2, "create needs --scope"},
		{[]string{"token", "frob"}, 2, `unknown action "frob"`},
		{[]string{"up", "--servers", "0"}, 2, "--servers must be at least 1"},
		{[]string{"balance", "--wait", "m"}, 2, "--wait needs --commit"},
		{[]string{"balance", "--collections", "--gc"}, 2, "--gc is for MANIFEST and DIR arguments"},
		{[]string{"up", "--capacity", "lots"}, 2, "--capacity"},
		{[]string{"nosuch"}, 2, `unknown command "nosuch"`},
		{[]string{"--version"}, 0, "keep "},
		{[]string{"help", "put"}, 0, "usage: keep put"},
		{[]string{"help"}, 0, "commands:"},
	}
	for _, tt := range tests {
		stdout, stderr, err := proctest.Run(t, env, nil, tt.args...)
		out := stdout + stderr
		if code := exitCode(err); code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("keep %v: exit %d, output %q; want %d and %q", tt.args, code, out, tt.code, tt.want)
		}
		if tt.code == 2 && tt.args[0] != "nosuch" && strings.Contains(out, "flags:") {
			t.Errorf("keep %v printed the whole usage:\n%s", tt.args, out)
		}
	}
}

// An empty manifest file, what a failed "keep put > m" leaves, is an error.
func TestE2EEmptyManifest(t *testing.T) {
	c := newInCluster(t, 1)
	empty := writeManifest(t, "")
	_, getErr, err := c.keep(t, "get", empty)
	if exitCode(err) != 1 || !strings.Contains(getErr, "is empty, not a manifest") {
		t.Errorf("keep get on an empty manifest: %v\n%s", err, getErr)
	}
	_, lsErr, err := proctest.Run(t, c.env, nil, "ls", empty)
	if exitCode(err) != 1 || !strings.Contains(lsErr, "is empty, not a manifest") {
		t.Errorf("keep ls on an empty manifest: %v\n%s", err, lsErr)
	}
}

// startKeep starts keep with args and returns the process and its
// output, to be read once it has exited. It is killed when the test ends.
func startKeep(t *testing.T, env []string, stdin io.Reader, args ...string) (*proc.Process, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := proctest.Command(t, env, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	p, err := proc.Start(cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	return p, &stdout, &stderr
}

// Ctrl-C: exit 130 with one line, and nothing half-written.
func TestE2EInterrupt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Run("put", func(t *testing.T) {
		c := newInCluster(t, 2)
		pr, pw := io.Pipe()
		go func() {
			buf := make([]byte, 1<<20)
			for {
				if _, err := pw.Write(buf); err != nil {
					return
				}
			}
		}()
		defer pr.Close()
		cmd, stdout, stderr := startKeep(t, c.env, pr, "put", "--services", c.services, "-")
		if err := c.WaitRequests(ctx, 1); err != nil {
			t.Fatal(err)
		}
		cmd.Signal(os.Interrupt)
		err := cmd.Wait()
		if code := exitCode(err); code != 130 || strings.TrimSpace(stderr.String()) != "keep put: interrupted" || stdout.Len() != 0 {
			t.Errorf("exit %d, stderr %q, stdout %d bytes", code, stderr.String(), stdout.Len())
		}
	})
	t.Run("get", func(t *testing.T) {
		c := newInCluster(t, 1)
		src := filepath.Join(t.TempDir(), "f")
		os.WriteFile(src, bytes.Repeat([]byte("g"), 100000), 0o644)
		text, stderr, err := c.keep(t, "put", "--replicas", "1", src)
		if err != nil {
			t.Fatalf("put: %v\n%s", err, stderr)
		}
		c.Server(0).SetGetDefault(keeptest.Response{Stall: true})
		out := t.TempDir()
		cmd, _, errOut := startKeep(t, c.env, nil, "get", "--services", c.services, writeManifest(t, text), "-o", out+"/")
		if err := c.Server(0).WaitStalled(ctx, 1); err != nil {
			t.Fatal(err)
		}
		cmd.Signal(os.Interrupt)
		err = cmd.Wait()
		entries, _ := os.ReadDir(out)
		if code := exitCode(err); code != 130 || strings.TrimSpace(errOut.String()) != "keep get: interrupted" || len(entries) != 0 {
			t.Errorf("exit %d, stderr %q, %d entries left in the output directory", code, errOut.String(), len(entries))
		}
	})
}

// A second keep up on the same directory refuses to start.
func TestE2EUpTwiceOneDir(t *testing.T) {
	env := proctest.Env(t)
	dir := t.TempDir()
	proctest.Start(t, env, "Press Ctrl-C", "up", "--dir", dir, "--servers", "1", "--capacity", "1G")
	_, stderr, err := proctest.Run(t, env, nil, "up", "--dir", dir, "--servers", "1")
	if exitCode(err) != 1 || !strings.Contains(stderr, "in use by process") {
		t.Errorf("second keep up: %v\n%s", err, stderr)
	}
}

// A stale default services file (left by a killed keep up) gets a line
// saying where the services came from and what to do.
func TestE2EStaleDefaultServicesFile(t *testing.T) {
	env := proctest.Env(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	keeptest.HoldPort(t, port)
	var state string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "XDG_STATE_HOME="); ok {
			state = v
		}
	}
	data, _ := keepclient.MarshalServices([]keepclient.Service{{UUID: "local-bi6l4-000000000000000", Host: "127.0.0.1", Port: port, Type: "disk"}})
	os.MkdirAll(filepath.Join(state, "keep"), 0o755)
	os.WriteFile(filepath.Join(state, "keep", "services.json"), data, 0o644)
	src := filepath.Join(t.TempDir(), "f")
	os.WriteFile(src, []byte("stale"), 0o644)
	_, stderr, err := proctest.Run(t, append(env, "KEEP_TOKEN=x"), nil, "put", "--passes", "1", "--replicas", "1", src)
	if exitCode(err) != 1 || !strings.Contains(stderr, "from default services file") || !strings.Contains(stderr, "is 'keep up' still running?") {
		t.Errorf("put with a stale default services file: %v\n%s", err, stderr)
	}
}

// Errors are sentences about the user's data, not Go function names.
func TestE2EErrorsNameNoFunctions(t *testing.T) {
	c := newInCluster(t, 1)
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("twice"), 0o644)
	goName := regexp.MustCompile(`\b[a-z]+\.[A-Z][A-Za-z]+\b`)
	for _, args := range [][]string{
		{"put", "--replicas", "1", f, f},
		{"put", "--replicas", "3", f},
		{"get", "acbd18db4cc2f85cedef654fccc4a4d8+3"},
		{"server", "--listen", "127.0.0.1:0", "--volume", filepath.Join(t.TempDir(), "missing")},
		{"server", "--listen", "127.0.0.1:0", "--volume", f},
	} {
		run := c.keep
		if args[0] == "server" { // takes no --services
			run = func(t *testing.T, args ...string) (string, string, error) {
				return proctest.Run(t, c.env, nil, args...)
			}
		}
		_, stderr, err := run(t, args...)
		if err == nil {
			t.Errorf("keep %v succeeded", args)
		}
		if m := goName.FindString(stderr); m != "" {
			t.Errorf("keep %v names %q:\n%s", args, m, stderr)
		}
	}
}

// --progress draws a bar even where stderr is not a terminal; by default
// none is drawn there.
func TestE2EProgressFlags(t *testing.T) {
	c := newInCluster(t, 2)
	f := filepath.Join(t.TempDir(), "f")
	writeRandom(t, f, 3<<20, 9)
	_, withBar, err := c.keep(t, "put", "--progress", f)
	if err != nil || !strings.Contains(withBar, "put ") || !strings.Contains(withBar, "MiB") {
		t.Errorf("put --progress: %v, stderr %q", err, withBar)
	}
	_, quiet, err := c.keep(t, "put", f)
	if err != nil || quiet != "" {
		t.Errorf("put to a pipe drew %q (%v)", quiet, err)
	}
	if _, _, err := c.keep(t, "put", "--no-progress", f); err != nil {
		t.Errorf("put --no-progress: %v", err)
	}
}

// TestTokenScopeBeforeDatabase: a bad --scope is a usage error found
// before the database is opened, which would create it.
func TestTokenScopeBeforeDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "registry.db")
	var stderr bytes.Buffer
	err := runToken(context.Background(), []string{"create", "x", "--scope", "everything", "--db", db}, io.Discard, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "--scope") {
		t.Errorf("--scope everything: %v, stderr %q; want a usage error naming --scope", err, stderr.String())
	}
	if _, err := os.Stat(db); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the database was opened (%v): a usage error should leave no file", err)
	}
}

// TestRegistryTakesNoArguments: keep registry refuses an argument (it
// used to ignore one given before or between its flags).
func TestRegistryTakesNoArguments(t *testing.T) {
	for _, args := range [][]string{
		{"extra", "--tls-cert", "c", "--tls-key", "k"},
		{"--tls-cert", "c", "extra", "--tls-key", "k"},
		{"--tls-cert", "c", "--tls-key", "k", "--", "extra"},
	} {
		var stderr bytes.Buffer
		if err := runRegistry(context.Background(), args, io.Discard, &stderr); !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "takes no arguments") {
			t.Errorf("keep registry %q: %v, stderr %q; want a usage error", args, err, stderr.String())
		}
	}
}
