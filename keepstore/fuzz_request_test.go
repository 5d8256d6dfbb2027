package keepstore_test

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

// FuzzServerRequest sends raw bytes, as one client connection, to a
// keepstore.Server behind a real net/http server, and checks that
// whatever the bytes:
//
//   - no handler panics (net/http would recover it and log it) or writes
//     its header twice;
//   - no answer is a 5xx other than 503 and 507 (a passing condition, a
//     full server), or 501 and 505, which net/http itself sends for a
//     transfer coding or protocol version it does not speak: a 500 or
//     502 caused by input alone is a bug;
//   - a PUT answered 200 left the block it names on the volume, holding
//     exactly a body whose MD5 is that hash and whose length the
//     returned locator gives;
//   - every block file on the volume hashes to its name, and no
//     temporary file is left once the connection is done;
//   - the server closes the connection within 30 s of the end of the
//     input.
//
// The bytes go over TCP to an httptest server started once per fuzz
// process, rather than through http.ReadRequest into ServeHTTP with a
// ResponseRecorder. That is slower (a loopback connection and a
// goroutine per input), but it tests the server as it runs: net/http's own
// server-side parsing and its refusals (431, 501, 505), chunked framing,
// Expect: 100-continue, pipelined requests on one connection, the read
// deadlines the minimum-rate rule sets through http.ResponseController
// (a recorder has none, so the rate code would take its other path), and
// responses aborted with http.ErrAbortHandler. The sending side is
// closed once the complete requests are answered (see fuzzExchange).
//
// Signatures are signed on PUT but not required on GET, so that mutated
// locators reach the volumes; signature checking has its own target
// (locator.FuzzVerify) and TestHostileRequests's signature rows.
func FuzzServerRequest(f *testing.F) {
	const sys = "fuzzsystoken"
	data := "fuzzed block"
	hash := hashOf([]byte(data))
	loc := "/" + locator.New([]byte(data)).String()
	key := []byte("fuzz signing key")
	signer := locator.Signer{Key: key, TTL: time.Hour}
	signed := "/" + signer.Sign(locator.New([]byte(data)), token, time.Now().Add(time.Hour)).String()
	sysAuth := "Authorization: Bearer " + sys
	for _, seed := range []string{
		hput("/"+hash, data),
		hput(loc, data, "X-Keep-Storage-Classes: default, hot", "X-Request-Id: fuzz-1"),
		hput("/"+hash, data, "Expect: 100-continue"),
		hput("/"+hash, "not the fuzzed block"),
		hput("/"+hashOf(nil), ""),
		hreq("PUT", "/"+hash, []string{"Transfer-Encoding: chunked"}, hchunked(data)),
		hreq("PUT", "/"+hash, []string{"Content-Length: 100"}, data),
		hreq("PUT", "/"+hash, []string{"Transfer-Encoding: chunked, identity"}, hchunked(data)),
		hput("/"+hash, data, "Authorization: Bearer a", "Authorization: Bearer b"),
		hput("/../"+hash, data),
		hput(loc+strings.Repeat("+Kzzzzz", 100), data),
		hget(loc),
		hget(signed),
		hget("/" + loc),
		hget(loc + "+Kzzzzz?x=1"),
		hreq("HEAD", loc, nil, ""),
		hreq("OPTIONS", loc, nil, ""),
		hget("/index", sysAuth),
		hget("/index/"+hash[:3], sysAuth),
		hget("/index?prefix=zz", sysAuth),
		hput("/"+hash, data) + hget(loc) + hreq("HEAD", loc, nil, ""),
		"GET " + loc + " HTTP/1.0\r\n\r\n",
		"GET http://keep" + loc + " HTTP/1.1\r\nHost: keep\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}

	dir := f.TempDir()
	srv, err := keepstore.New(keepstore.Config{
		Volumes:     []keepstore.VolumeConfig{{Path: dir}},
		SigningKey:  key,
		SigningTTL:  time.Hour,
		SystemToken: sys,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		f.Fatal(err)
	}
	errs := &fuzzServerLog{}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = log.New(errs, "", 0)
	ts.Start()
	f.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	verified := map[string]fuzzStamp{} // block files already checked, by path

	f.Fuzz(func(t *testing.T, raw []byte) {
		methods, paths := fuzzRequestLines(raw)
		responses := fuzzExchange(t, ts.Listener.Addr().String(), raw, methods)
		if msg := errs.take(); msg != "" {
			t.Fatalf("server error log: %s", msg)
		}
		for i, r := range responses {
			switch c := r.code; {
			case c < 100 || c > 599:
				t.Fatalf("response %d: status %d", i, c)
			case c >= 500 && c != 501 && c != 503 && c != 505 && c != 507:
				t.Fatalf("response %d: %d %.200q for input alone", i, c, r.body)
			}
			// Only the PUT handler sets X-Keep-Replicas-Stored.
			if r.code != http.StatusOK || r.replicas == "" {
				continue
			}
			l, err := locator.Parse(strings.TrimSpace(r.body))
			if err != nil {
				t.Fatalf("PUT answered 200 with %.200q: %v", r.body, err)
			}
			if i < len(paths) && methods[i] == http.MethodPut && !strings.Contains(paths[i], l.Hash) {
				t.Fatalf("PUT %.100q answered 200 with the locator of %s", paths[i], l.Hash)
			}
			b, err := os.ReadFile(filepath.Join(dir, l.Hash[:3], l.Hash))
			if err != nil {
				t.Fatalf("PUT answered 200 with %s, but the block is not stored: %v", l, err)
			}
			if int64(len(b)) != l.Size || hashOf(b) != l.Hash {
				t.Fatalf("PUT answered 200 with %s, but stored %d bytes with MD5 %s", l, len(b), hashOf(b))
			}
		}
		fuzzCheckVolume(t, dir, verified)
	})
}

// fuzzResponse is what the fuzz target checks of one response.
type fuzzResponse struct {
	code     int
	replicas string // X-Keep-Replicas-Stored
	body     string
}

// fuzzExchange sends raw on a new connection and returns the responses,
// 1xx answers skipped. It first reads one answer for each complete
// request in raw (methods, from fuzzRequestLines, so that HEAD answers
// are read without a body), then closes the sending side and reads
// until the server closes the connection: what is left is an incomplete
// request, which then ends at once instead of waiting out the upload
// grace. Closing earlier would cancel the requests still being served
// (net/http takes the end of the input for a client gone), which is
// TestHostileRequests's business, not this target's.
func fuzzExchange(t *testing.T, addr string, raw []byte, methods []string) []fuzzResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := conn.Write(raw)
		wrote <- err
	}()
	closeWrite := sync.OnceFunc(func() {
		if <-wrote == nil {
			conn.(*net.TCPConn).CloseWrite()
		}
	})
	defer func() {
		conn.Close()
		closeWrite()
	}()
	br := bufio.NewReader(conn)
	var out []fuzzResponse
	for {
		complete := len(out) >= len(methods)
		if complete {
			closeWrite()
		}
		// The deadlines are hang guards. Before the close, one passing
		// means the server waits for more of a request that
		// http.ReadRequest took for complete: close and read on.
		wait := 30 * time.Second
		if !complete {
			wait = 5 * time.Second
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		method := http.MethodGet
		if !complete {
			method = methods[len(out)]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		switch {
		case err != nil && fuzzTimeout(err) && !complete:
			methods = methods[:len(out)]
			continue
		case err != nil && fuzzTimeout(err):
			t.Fatalf("no answer and no close within %v of the end of the input, after %d responses", wait, len(out))
		case err != nil:
			// The server closed the connection (or a guess of the method
			// was wrong and the rest does not parse).
			return out
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if fuzzTimeout(err) {
			t.Fatalf("response %d: body unfinished after %v", len(out), wait)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		out = append(out, fuzzResponse{code: resp.StatusCode, replicas: resp.Header.Get("X-Keep-Replicas-Stored"), body: string(body)})
	}
}

func fuzzTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// fuzzRequestLines returns the methods and paths of the complete
// requests at the start of raw, as http.ReadRequest parses them.
func fuzzRequestLines(raw []byte) (methods, paths []string) {
	br := bufio.NewReader(bytes.NewReader(raw))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return methods, paths
		}
		_, err = io.Copy(io.Discard, req.Body)
		req.Body.Close()
		if err != nil {
			return methods, paths
		}
		methods = append(methods, req.Method)
		paths = append(paths, req.URL.Path)
	}
}

// fuzzStamp identifies a version of a file, so that unchanged block
// files are not hashed again on every input.
type fuzzStamp struct {
	size  int64
	mtime time.Time
}

// fuzzCheckVolume checks that every block file under dir hashes to its name
// and that no temporary file is left, hashing only the files that are
// new or changed since the last call.
func fuzzCheckVolume(t *testing.T, dir string, verified map[string]fuzzStamp) {
	t.Helper()
	for _, rel := range listFiles(t, dir) {
		name := filepath.Base(rel)
		if strings.HasPrefix(name, "tmp") {
			t.Fatalf("temporary file %s left after the connection closed", rel)
		}
		p := filepath.Join(dir, rel)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		st := fuzzStamp{fi.Size(), fi.ModTime()}
		if verified[p] == st {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		h := md5.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != name {
			t.Fatalf("block file %s holds %d bytes with MD5 %s", rel, fi.Size(), got)
		}
		verified[p] = st
	}
}

// fuzzServerLog collects the lines net/http logs that mean a handler
// misbehaved: a recovered panic (other than http.ErrAbortHandler, which
// net/http does not log) or a second WriteHeader.
type fuzzServerLog struct {
	mu  sync.Mutex
	bad strings.Builder
}

func (e *fuzzServerLog) Write(p []byte) (int, error) {
	if s := string(p); strings.Contains(s, "panic") || strings.Contains(s, "superfluous") {
		e.mu.Lock()
		fmt.Fprintf(&e.bad, "%s\n", strings.TrimSpace(s))
		e.mu.Unlock()
	}
	return len(p), nil
}

// take returns what was collected since the last call, and forgets it.
func (e *fuzzServerLog) take() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.bad.String()
	e.bad.Reset()
	return s
}
