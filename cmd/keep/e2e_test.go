package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
)

// These tests run the real binary, built once per test run.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func keepBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keep-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "keep")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// env isolates a test from the user's configuration.
func testEnv(t *testing.T) []string {
	state := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ARVADOS_") || strings.HasPrefix(kv, "XDG_STATE_HOME=") || strings.HasPrefix(kv, "XDG_CACHE_HOME=") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "XDG_STATE_HOME="+state, "XDG_CACHE_HOME="+filepath.Join(state, "cache"), "HOME="+state)
}

// daemon is a long-running keep process.
type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
}

// kill stops the process at once and waits until it is gone, so that its
// ports refuse connections from then on.
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// startDaemon starts a long-running keep subcommand and waits until it
// prints a line containing ready on stdout or stderr. The process is
// interrupted at cleanup.
func startDaemon(t *testing.T, env []string, ready string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(keepBinary(t), args...)
	cmd.Env = env
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		pw.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	})
	sc := bufio.NewScanner(pr)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), ready) {
			go io.Copy(io.Discard, pr)
			return &daemon{cmd: cmd, exited: exited}
		}
	}
	t.Fatalf("keep %s exited before %q:\n%s", strings.Join(args, " "), ready, strings.Join(seen, "\n"))
	return nil
}

func runKeep(t *testing.T, env []string, stdin []byte, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(keepBinary(t), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

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
	text, stderr, err := runKeep(t, env, nil, append(args, src)...)
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
	if _, stderr, err := runKeep(t, env, nil, append(getArgs, mf)...); err != nil {
		t.Fatalf("keep get: %v\n%s", err, stderr)
	}
	back, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("file read back differs (%d bytes, want %d)", len(back), len(data))
	}
}

func TestE2EUp(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	startDaemon(t, env, "Press Ctrl-C", "up", "--dir", dir, "--servers", "4", "--proxy")
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
		text, stderr, err := runKeep(t, env, nil, "put", "--replicas", "2", src)
		if err != nil {
			t.Fatalf("put: %v\n%s", err, stderr)
		}
		out, stderr, err := runKeep(t, env, nil, "check", "--system-token-file", filepath.Join(dir, "system-token"), writeManifest(t, text))
		if err != nil || !strings.Contains(out, "ok:") {
			t.Errorf("check against keep up: %v\n%s%s", err, out, stderr)
		}
	})
}

// startServers starts n keep server processes and writes a services file.
func startServers(t *testing.T, env []string, n int) (svcFile string, dirs []string, daemons []*daemon) {
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

// startServer starts one keep server process with the given volume flags
// and returns it as service number i.
func startServer(t *testing.T, env []string, i int, volumeArgs ...string) (keepclient.Service, *daemon) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	args := append([]string{"server", "--listen", "127.0.0.1:0", "--addr-file", addrFile}, volumeArgs...)
	d := startDaemon(t, env, "listening", args...)
	return keepclient.Service{UUID: fmt.Sprintf("e2e00-bi6l4-%015d", i), Host: "127.0.0.1", Port: readPort(t, addrFile), Type: "disk"}, d
}

// readPort returns the port of the address a daemon wrote to its --addr-file.
func readPort(t *testing.T, addrFile string) int {
	t.Helper()
	addr, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	_, portText, err := net.SplitHostPort(strings.TrimSpace(string(addr)))
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func TestE2EServerKilled(t *testing.T) {
	env := testEnv(t)
	svcFile, dirs, daemons := startServers(t, env, 4)
	daemons[1].kill()
	svcs, err := keepclient.LoadServices(svcFile)
	if err != nil {
		t.Fatal(err)
	}
	keeptest.HoldPort(t, svcs[1].Port)
	checkPutGet(t, env, dirs, 3, "--services", svcFile)

	// Four replicas with three live servers: a clear failure, no manifest.
	src, _ := randomFile(t, 1000)
	stdout, stderr, err := runKeep(t, env, nil, "put", "--replicas", "4", "--services", svcFile, src)
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
	env := testEnv(t)
	svcFile, dirs, _ := startServers(t, env, 3)
	addrFile := filepath.Join(t.TempDir(), "addr")
	startDaemon(t, env, "listening", "proxy", "--listen", "127.0.0.1:0", "--services", svcFile, "--addr-file", addrFile, "--any-token")
	data, _ := keepclient.MarshalServices([]keepclient.Service{{UUID: "e2e00-bi6l4-proxy0000000000", Host: "127.0.0.1", Port: readPort(t, addrFile), Type: "proxy"}})
	proxyFile := filepath.Join(t.TempDir(), "proxy.json")
	os.WriteFile(proxyFile, data, 0o644)
	checkPutGet(t, env, dirs, 2, "--services", proxyFile)
}

func TestE2EUpStopsCleanly(t *testing.T) {
	env := testEnv(t)
	dir := t.TempDir()
	d := startDaemon(t, env, "Press Ctrl-C", "up", "--dir", dir, "--servers", "2")
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
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
