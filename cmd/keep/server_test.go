package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// signalWriter collects output and closes ready at the first write
// containing want.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	ready chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestServerCommand(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir, roDir := t.TempDir(), t.TempDir()
	tmp := t.TempDir()
	addrFile := filepath.Join(tmp, "addr")
	tokFile := filepath.Join(tmp, "systoken")
	os.WriteFile(tokFile, []byte("sys\n"), 0o600)
	keyFile := filepath.Join(tmp, "key")
	os.WriteFile(keyFile, []byte("blobkey\n"), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &signalWriter{want: "listening", ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- runServer(ctx, []string{
			"--listen", "127.0.0.1:0", "--volume", dir, "--read-only-volume", roDir,
			"--addr-file", addrFile, "--capacity", "1M", "--classes", "default,hot",
			"--system-token-file", tokFile, "--signing-key-file", keyFile, "--log-level", "debug",
		}, io.Discard, stderr)
	}()
	select {
	case <-stderr.ready:
	case err := <-done:
		t.Fatalf("runServer returned early: %v\n%s", err, stderr)
	}
	b, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(string(b))
	if !strings.Contains(stderr.String(), "addr="+addr) || strings.HasSuffix(addr, ":0") {
		t.Errorf("listening line does not give the bound address %s:\n%s", addr, stderr)
	}
	base := "http://" + addr
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	do := func(method, path, tok string, body []byte, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	const foo = "acbd18db4cc2f85cedef654fccc4a4d8"
	code, loc := do("PUT", "/"+foo, "tok", []byte("foo"), "X-Keep-Storage-Classes", "hot")
	if code != 200 || !strings.HasPrefix(loc, foo+"+3+A") {
		t.Fatalf("PUT = %d %q, want a signed locator", code, loc)
	}
	if _, err := os.Stat(filepath.Join(dir, foo[:3], foo)); err != nil {
		t.Errorf("block not in the volume directory: %v", err)
	}
	if code, body := do("GET", "/"+strings.TrimSpace(loc), "tok", nil); code != 200 || body != "foo" {
		t.Errorf("GET = %d %q", code, body)
	}
	if code, body := do("GET", "/index", "sys", nil); code != 200 || !strings.HasPrefix(body, foo+"+3 ") {
		t.Errorf("GET /index = %d %q", code, body)
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	if code, _ := do("PUT", "/"+fmt.Sprintf("%x", md5.Sum(big)), "tok", big); code != 507 {
		t.Errorf("PUT beyond --capacity = %d, want 507", code)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("runServer after cancel = %v", err)
	}
}

func TestServerFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"--listen", "127.0.0.1:0"},
		{"--volume", dir, "extra"},
		{"--volume", dir, "--tls-cert", "c.pem"},
	} {
		if err := runServer(context.Background(), args, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("runServer %q = %v, want errUsage", args, err)
		}
	}
	for _, args := range [][]string{
		{"--volume", dir, "--capacity", "10X"},
		{"--volume", filepath.Join(dir, "missing"), "--listen", "127.0.0.1:0"},
		{"--volume", dir, "--require-signatures", "--listen", "127.0.0.1:0"},
		{"--volume", dir, "--signing-key-file", filepath.Join(dir, "nokey")},
		{"--volume", dir, "--log-level", "loud"},
	} {
		if err := runServer(context.Background(), args, io.Discard, io.Discard); err == nil || errors.Is(err, errUsage) {
			t.Errorf("runServer %q = %v, want an error", args, err)
		}
	}
}

func TestServerParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1000": 1000, "10K": 10 << 10, "10G": 10 << 30, "10GiB": 10 << 30, "10GB": 10e9,
		"2t": 2 << 40, "64M": 64 << 20, "5B": 5, "1MB": 1e6,
	} {
		if got, err := srvParseBytes(in); err != nil || got != want {
			t.Errorf("srvParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "1.5G", "10X", "10KiBB", "99999999999T"} {
		if _, err := srvParseBytes(in); err == nil {
			t.Errorf("srvParseBytes(%q) succeeded", in)
		}
	}
}
