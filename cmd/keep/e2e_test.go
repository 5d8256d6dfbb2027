package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
)

// These tests run the real binary, built once per test binary by
// proctest.Binary, in the environment proctest.Env gives.

func randomFile(t *testing.T, size int) (string, []byte) {
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "random.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// holders counts the server directories holding each block of manifest text.
func holders(t *testing.T, text string, dirs []string) map[string]int {
	t.Helper()
	m, err := manifest.Parse(text)
	if err != nil {
		t.Fatalf("bad manifest %q: %v", text, err)
	}
	out := make(map[string]int)
	for _, b := range m.Blocks() {
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, b.Hash[:3], b.Hash)); err == nil {
				out[b.Hash]++
			}
		}
	}
	return out
}

func checkPutGet(t *testing.T, env []string, dirs []string, replicas int, extra ...string) {
	t.Helper()
	src, data := randomFile(t, 64<<20+1<<20)
	args := append([]string{"put", "--replicas", fmt.Sprint(replicas)}, extra...)
	text, stderr, err := proctest.Run(t, env, nil, append(args, src)...)
	if err != nil {
		t.Fatalf("keep put: %v\n%s", err, stderr)
	}
	counts := holders(t, text, dirs)
	if len(counts) != 2 {
		t.Fatalf("manifest has %d blocks on disk, want 2:\n%s", len(counts), text)
	}
	for h, n := range counts {
		if n != replicas {
			t.Errorf("block %s is in %d server directories, want %d", h, n, replicas)
		}
	}
	mf := filepath.Join(t.TempDir(), "manifest.txt")
	os.WriteFile(mf, []byte(text), 0o644)
	out := filepath.Join(t.TempDir(), "back.bin")
	getArgs := append([]string{"get", "-o", out}, extra...)
	if _, stderr, err := proctest.Run(t, env, nil, append(getArgs, mf)...); err != nil {
		t.Fatalf("keep get: %v\n%s", err, stderr)
	}
	back, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("file read back differs (%d bytes, want %d)", len(back), len(data))
	}
}

func TestE2EUp(t *testing.T) {
	env := proctest.Env(t)
	dir := t.TempDir()
	proctest.Start(t, env, "Press Ctrl-C", "up", "--dir", dir, "--servers", "4", "--proxy")
	var dirs []string
	for i := 0; i < 4; i++ {
		dirs = append(dirs, filepath.Join(dir, fmt.Sprint("server-", i)))
	}
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint("N=", n), func(t *testing.T) {
			// No --services: the default file written by keep up is used.
			checkPutGet(t, env, dirs, n)
		})
	}
	t.Run("proxy N=2", func(t *testing.T) {
		checkPutGet(t, env, dirs, 2, "--services", filepath.Join(dir, "proxy-services.json"))
	})
	t.Run("check with the system token it wrote", func(t *testing.T) {
		src, _ := randomFile(t, 1000)
		text, stderr, err := proctest.Run(t, env, nil, "put", "--replicas", "2", src)
		if err != nil {
			t.Fatalf("put: %v\n%s", err, stderr)
		}
		out, stderr, err := proctest.Run(t, env, nil, "check", "--system-token-file", filepath.Join(dir, "system-token"), writeManifest(t, text))
		if err != nil || !strings.Contains(out, "ok:") {
			t.Errorf("check against keep up: %v\n%s%s", err, out, stderr)
		}
	})
}

// startServers starts n keep server processes and writes a services file.
func startServers(t *testing.T, env []string, n int) (svcFile string, dirs []string, daemons []*proc.Process) {
	t.Helper()
	var svcs []keepclient.Service
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		svc, d := startServer(t, env, i, "--volume", dir)
		svcs = append(svcs, svc)
		dirs = append(dirs, dir)
		daemons = append(daemons, d)
	}
	data, _ := keepclient.MarshalServices(svcs)
	svcFile = filepath.Join(t.TempDir(), "services.json")
	os.WriteFile(svcFile, data, 0o644)
	return svcFile, dirs, daemons
}

// keepProcess is a keep server or proxy process a test started, with the
// address it serves at.
type keepProcess struct {
	*proc.Process
	base string // http[s]://127.0.0.1:PORT
}

// startServer starts one keep server process with the given volume flags
// and returns it as service number i.
func startServer(t *testing.T, env []string, i int, volumeArgs ...string) (keepclient.Service, *proc.Process) {
	t.Helper()
	p, addr := proctest.Listen(t, env, "listening", append([]string{"server", "--listen", "127.0.0.1:0"}, volumeArgs...)...)
	return keepclient.Service{UUID: fmt.Sprintf("e2e00-bi6l4-%015d", i), Host: "127.0.0.1", Port: int(addr.Port()), Type: "disk"}, p
}

func TestE2EServerKilled(t *testing.T) {
	env := proctest.Env(t)
	svcFile, dirs, daemons := startServers(t, env, 4)
	daemons[1].Kill()
	svcs, err := keepclient.LoadServices(svcFile)
	if err != nil {
		t.Fatal(err)
	}
	keeptest.HoldPort(t, svcs[1].Port)
	checkPutGet(t, env, dirs, 3, "--services", svcFile)

	// Four replicas with three live servers: a clear failure, no manifest.
	src, _ := randomFile(t, 1000)
	stdout, stderr, err := proctest.Run(t, env, nil, "put", "--replicas", "4", "--services", svcFile, src)
	if err == nil {
		t.Fatal("put of 4 replicas on 3 live servers succeeded")
	}
	if stdout != "" {
		t.Errorf("a manifest was printed: %q", stdout)
	}
	for _, want := range []string{"stored 3 of 4 replicas", "e2e00-bi6l4-000000000000001", "refused", "(part of " + filepath.Base(src) + ")"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestE2EProxyProcess(t *testing.T) {
	env := proctest.Env(t)
	svcFile, dirs, _ := startServers(t, env, 3)
	_, addr := proctest.Listen(t, env, "listening", "proxy", "--listen", "127.0.0.1:0", "--services", svcFile, "--any-token")
	data, _ := keepclient.MarshalServices([]keepclient.Service{{UUID: "e2e00-bi6l4-proxy0000000000", Host: "127.0.0.1", Port: int(addr.Port()), Type: "proxy"}})
	proxyFile := filepath.Join(t.TempDir(), "proxy.json")
	os.WriteFile(proxyFile, data, 0o644)
	checkPutGet(t, env, dirs, 2, "--services", proxyFile)
}

func TestE2EUpStopsCleanly(t *testing.T) {
	env := proctest.Env(t)
	dir := t.TempDir()
	d := proctest.Start(t, env, "Press Ctrl-C", "up", "--dir", dir, "--servers", "2")
	if err := d.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	d.Wait()
	if code := d.State().ExitCode(); code != 0 {
		t.Errorf("keep up exited with %d after Ctrl-C", code)
	}
	// The data and the cluster's services file stay for the next start;
	// the default file, which would point at dead ports, is gone.
	if _, err := os.Stat(filepath.Join(dir, "services.json")); err != nil {
		t.Error(err)
	}
	var state string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "XDG_STATE_HOME="); ok {
			state = v
		}
	}
	if _, err := os.Stat(filepath.Join(state, "keep", "services.json")); !os.IsNotExist(err) {
		t.Errorf("default services file after keep up stopped: %v", err)
	}
}
