package keepstore_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keeptest"
)

const (
	token     = "usertoken"
	mgmtToken = "managementtoken" // what start gives servers unless told otherwise
)

type testServer struct {
	*httptest.Server
	srv  *keepstore.Server
	dirs []string
	log  *proc.Log
}

// dirVolumes returns n directory volumes in fresh temporary directories.
func dirVolumes(t testing.TB, n int) []keepstore.VolumeConfig {
	vs := make([]keepstore.VolumeConfig, n)
	for i := range vs {
		vs[i].Path = t.TempDir()
	}
	return vs
}

// start runs a server for cfg (one directory volume if none given).
func start(t testing.TB, cfg keepstore.Config) *testServer {
	t.Helper()
	if len(cfg.Volumes) == 0 {
		cfg.Volumes = dirVolumes(t, 1)
	}
	if cfg.ManagementToken == "" {
		cfg.ManagementToken = mgmtToken
	}
	ts := &testServer{log: proc.NewLog(0)}
	cfg.Logger = slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := keepstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = srv
	for _, v := range cfg.Volumes {
		ts.dirs = append(ts.dirs, v.Path)
	}
	ts.Server = httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return ts
}

// waitLog waits until a line of the server's log contains text.
func (ts *testServer) waitLog(t *testing.T, text string) {
	t.Helper()
	proctest.WaitLine(t, ts.log, regexp.QuoteMeta(text))
}

func hashOf(data []byte) string {
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

// do sends a request and returns the status, body and headers.
func (ts *testServer) do(t *testing.T, method, path, tok string, body []byte, hdr ...string) (int, string, http.Header) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// put stores data and fails the test unless the server answers 200.
func (ts *testServer) put(t *testing.T, data []byte, hdr ...string) (string, http.Header) {
	t.Helper()
	code, body, h := ts.do(t, "PUT", "/"+hashOf(data), token, data, hdr...)
	if code != http.StatusOK {
		t.Fatalf("PUT %d bytes: %d %s", len(data), code, body)
	}
	return strings.TrimSuffix(body, "\n"), h
}

// files returns all files under the server's volumes.
func (ts *testServer) files(t *testing.T) []string {
	var out []string
	for _, d := range ts.dirs {
		out = append(out, listFiles(t, d)...)
	}
	return out
}

// raw sends a hand-written request over a fresh TCP connection and
// returns the response (keeptest.RawExchange). If halfClose, the sending
// side is closed after the request so the server sees the body end.
func (ts *testServer) raw(t *testing.T, req string, halfClose bool) (int, string) {
	t.Helper()
	resp, body := keeptest.RawExchange(t, ts.Listener.Addr().String(), req, halfClose)
	return resp.StatusCode, body
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\r\n")
	return line
}

// rawPut formats a PUT request with a Content-Length header and body.
func rawPut(path string, contentLength int, body string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "PUT %s HTTP/1.1\r\nHost: keep\r\nAuthorization: Bearer %s\r\n", path, token)
	if contentLength >= 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", contentLength)
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}
