package proctest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEnv: the user's Arvados settings, KEEP_TOKEN, home and XDG
// directories are gone, replaced by a fresh directory; the rest stays.
func TestEnv(t *testing.T) {
	t.Setenv("ARVADOS_API_HOST", "example.org")
	t.Setenv("KEEP_TOKEN", "secret")
	t.Setenv("XDG_CONFIG_HOME", "/elsewhere")
	t.Setenv("PROCTEST_KEPT", "yes")
	env := Env(t)
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Errorf("%s twice", k)
		}
		got[k] = v
	}
	for _, k := range []string{"ARVADOS_API_HOST", "KEEP_TOKEN", "XDG_CONFIG_HOME"} {
		if v, ok := got[k]; ok {
			t.Errorf("%s=%s kept", k, v)
		}
	}
	home := got["HOME"]
	if home == "" || home == os.Getenv("HOME") || got["PROCTEST_KEPT"] != "yes" {
		t.Errorf("HOME=%q PROCTEST_KEPT=%q", home, got["PROCTEST_KEPT"])
	}
	if got["XDG_STATE_HOME"] != filepath.Join(home, "state") || got["XDG_CACHE_HOME"] != filepath.Join(home, "cache") {
		t.Errorf("XDG directories %q %q not under HOME %q", got["XDG_STATE_HOME"], got["XDG_CACHE_HOME"], home)
	}
	if fi, err := os.Stat(home); err != nil || !fi.IsDir() {
		t.Errorf("HOME: %v", err)
	}
}

// TestKeep builds keep, runs it to its end, and runs a server on port 0
// until it listens, through the helpers the packages' tests use.
func TestKeep(t *testing.T) {
	env := Env(t)
	out, stderr, err := Run(t, env, nil, "version")
	if err != nil || !strings.HasPrefix(out, "keep ") {
		t.Fatalf("keep version: %q %v\n%s", out, err, stderr)
	}
	if _, stderr, err := Run(t, env, []byte("x"), "no-such-command"); err == nil || stderr == "" {
		t.Errorf("keep no-such-command: %v, %q", err, stderr)
	}
	p, addr := Listen(t, env, "keep server listening", "server", "--listen", "127.0.0.1:0", "--volume", t.TempDir())
	if !addr.Addr().IsLoopback() || addr.Port() == 0 {
		t.Errorf("address %v", addr)
	}
	m := WaitLine(t, p, `listening.* addr=(\S+)`)
	if m[1] != addr.String() {
		t.Errorf("the log says %s, the address file %s", m[1], addr)
	}
	if p.State() != nil {
		t.Error("the server is not running")
	}
	// Start, without an address file: the log line gives the address.
	q := Start(t, env, `listening.* addr=127\.0\.0\.1:[1-9]`, "server", "--listen", "127.0.0.1:0", "--volume", t.TempDir())
	if err := q.Stop(Timeout); err != nil {
		t.Errorf("server stopped with SIGTERM: %v", err)
	}
}
