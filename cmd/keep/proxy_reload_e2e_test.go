package main

import (
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
)

// startProxyProcess runs "keep proxy" on a loopback port with args and
// waits until it listens; it is stopped when the test ends.
func startProxyProcess(t *testing.T, env []string, args ...string) *keepProcess {
	t.Helper()
	p, addr := proctest.Listen(t, env, `keep proxy listening`, append([]string{"proxy", "--listen", "127.0.0.1:0"}, args...)...)
	return &keepProcess{Process: p, base: fmt.Sprintf("http://127.0.0.1:%d", addr.Port())}
}

// putThrough writes data through the proxy with the given number of
// replicas and returns the dirs (by index) that then hold it.
func putThrough(t *testing.T, p *keepProcess, data []byte, replicas int, dirs []string) []int {
	t.Helper()
	hash := fmt.Sprintf("%x", md5.Sum(data))
	cfgPut(t, http.DefaultClient, p.base, data, "X-Keep-Desired-Replicas", fmt.Sprint(replicas))
	var on []int
	for i, d := range dirs {
		if cfgOn(d, hash) {
			on = append(on, i)
		}
	}
	return on
}

// replaceFile puts text at path by renaming a new file over it, so the
// proxy never reads it half-written.
func replaceFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// e2eServers starts n keep server processes and returns them as
// services, with their volume directories.
func e2eServers(t *testing.T, env []string, n int) ([]keepclient.Service, []string) {
	t.Helper()
	var svcs []keepclient.Service
	var dirs []string
	for i := range n {
		dir := t.TempDir()
		svc, _ := startServer(t, env, i, "--volume", dir)
		svcs, dirs = append(svcs, svc), append(dirs, dir)
	}
	return svcs, dirs
}

// TestE2EProxyReloadsServices: a proxy started with two of three servers
// in its --services file writes to the new pair once the file names
// another (one added, one removed), without a restart; a broken or empty
// file is logged as an error and the last good list stays in use. The
// test waits for the proxy's own log lines, not for time.
func TestE2EProxyReloadsServices(t *testing.T) {
	env := proctest.Env(t)
	svcs, dirs := e2eServers(t, env, 3)
	svcFile := filepath.Join(t.TempDir(), "services.json")
	if err := discovery.WriteServicesFile(svcFile, svcs[:2]); err != nil {
		t.Fatal(err)
	}
	p := startProxyProcess(t, env, "--services", svcFile, "--services-check", "20ms", "--any-token")
	checkProxyVersion(t, env, p)
	if on := putThrough(t, p, []byte("before the change"), 2, dirs); fmt.Sprint(on) != "[0 1]" {
		t.Fatalf("before the change, the block is on servers %v, want [0 1]", on)
	}

	if err := discovery.WriteServicesFile(svcFile, svcs[1:]); err != nil {
		t.Fatal(err)
	}
	proctest.WaitLine(t, p, `keep services changed; writing to the new list.* count=2 added="`+svcs[2].UUID+` 127.0.0.1:[0-9]+" removed="`+svcs[0].UUID+` 127.0.0.1:[0-9]+" updated=""`)
	if on := putThrough(t, p, []byte("after the change"), 2, dirs); fmt.Sprint(on) != "[1 2]" {
		t.Fatalf("after the change, the block is on servers %v, want [1 2]", on)
	}

	for i, bad := range []struct{ text, logged string }{
		{`{"items": [`, "unexpected end of JSON input"},
		{`{"items": []}`, "the list is empty"},
	} {
		replaceFile(t, svcFile, bad.text)
		proctest.WaitLine(t, p, `level=ERROR msg="keep services could not be read again; still using the previous list" count=2 err=".*`+regexp.QuoteMeta(bad.logged))
		if on := putThrough(t, p, fmt.Appendf(nil, "with a bad file %d", i), 2, dirs); fmt.Sprint(on) != "[1 2]" {
			t.Errorf("with the file %s, the block is on servers %v, want [1 2] (the last good list)", bad.text, on)
		}
	}
}

// TestE2EProxyReloadsOnSIGHUP: with --services-check 0 the proxy reads
// its services file again only on SIGHUP, and says so even when nothing
// changed.
func TestE2EProxyReloadsOnSIGHUP(t *testing.T) {
	env := proctest.Env(t)
	svcs, dirs := e2eServers(t, env, 2)
	svcFile := filepath.Join(t.TempDir(), "services.json")
	if err := discovery.WriteServicesFile(svcFile, svcs[:1]); err != nil {
		t.Fatal(err)
	}
	p := startProxyProcess(t, env, "--services", svcFile, "--services-check", "0", "--any-token")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	proctest.WaitLine(t, p, `msg="keep services unchanged" services="services file [^"]*" count=1`)

	if err := discovery.WriteServicesFile(svcFile, svcs[1:]); err != nil {
		t.Fatal(err)
	}
	if on := putThrough(t, p, []byte("not yet reloaded"), 1, dirs); fmt.Sprint(on) != "[0]" {
		t.Fatalf("before SIGHUP, the block is on servers %v, want [0]: the file is read only on SIGHUP", on)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	proctest.WaitLine(t, p, `keep services changed; writing to the new list.* added="`+svcs[1].UUID)
	if on := putThrough(t, p, []byte("reloaded"), 1, dirs); fmt.Sprint(on) != "[1]" {
		t.Fatalf("after SIGHUP, the block is on servers %v, want [1]", on)
	}
}

// checkProxyVersion: the proxy names the build "keep version" prints in
// its start-up line and in its /_health/ping answer.
func checkProxyVersion(t *testing.T, env []string, p *keepProcess) {
	t.Helper()
	out, stderr, err := proctest.Run(t, env, nil, "version")
	want, ok := strings.CutPrefix(strings.TrimSpace(out), "keep ")
	if err != nil || !ok || want == "" {
		t.Fatalf("keep version: %q %v\n%s", out, err, stderr)
	}
	if !regexp.MustCompile(`msg="keep proxy listening".* version="?` + regexp.QuoteMeta(want)).MatchString(p.Log().String()) {
		t.Errorf("the start-up line does not name the version %q:\n%s", want, p.Log())
	}
	var h struct{ Health, Version string }
	if err := getJSON(p.base+"/_health/ping", "", &h); err != nil || h.Health != "OK" || h.Version != want {
		t.Errorf("GET /_health/ping = %+v, %v; want health OK and version %q", h, err, want)
	}
}

// TestProxyServicesCheckFlag: a negative --services-check is a usage
// error.
func TestProxyServicesCheckFlag(t *testing.T) {
	var stderr strings.Builder
	if err := runProxy(t.Context(), []string{"--services-check", "-1s"}, io.Discard, &stderr); !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "--services-check -1s") {
		t.Errorf("--services-check -1s: %v %q, want a usage error naming it", err, stderr.String())
	}
}
