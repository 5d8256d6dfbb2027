package keeptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const fooHash = "acbd18db4cc2f85cedef654fccc4a4d8"

var foo = []byte("foo")

// waitTimeout bounds every wait for an event, so a broken test fails
// instead of hanging.
const waitTimeout = 10 * time.Second

// newClient returns an HTTP client with its own connections, which honours
// Expect: 100-continue for up to 5 seconds.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type result struct {
	status int
	body   string
	header http.Header
}

// do sends one request; hdr holds header name/value pairs.
func do(ctx context.Context, c *http.Client, method, url string, body io.Reader, size int64, hdr ...string) (result, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return result{}, err
	}
	if body != nil {
		req.ContentLength = size
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{resp.StatusCode, string(b), resp.Header}, err
}

// mustDo is do that fails the test on a transport error.
func mustDo(t *testing.T, c *http.Client, method, url string, body []byte, hdr ...string) result {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	res, err := do(context.Background(), c, method, url, r, int64(len(body)), hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res
}

// putFoo PUTs the block "foo" to s.
func putFoo(t *testing.T, c *http.Client, s *Server, hdr ...string) result {
	t.Helper()
	return mustDo(t, c, "PUT", s.URL()+"/"+fooHash, foo, hdr...)
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestPutGetHead(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 2)
	hc := newClient(t)
	s := c.Server(0)

	res := putFoo(t, hc, s, "X-Request-Id", "req-123", "Authorization", "Bearer tok")
	if res.status != 200 || res.body != fooHash+"+3\n" {
		t.Fatalf("PUT = %d %q", res.status, res.body)
	}
	for name, want := range map[string]string{
		"X-Keep-Replicas-Stored":           "1",
		"X-Keep-Storage-Classes-Confirmed": "default=1",
		"X-Request-Id":                     "req-123",
	} {
		if got := res.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if b, ok := s.Block(fooHash); !ok || string(b) != "foo" || !s.Has(fooHash+"+3") {
		t.Errorf("Block = %q, %v", b, ok)
	}
	if h := c.Holders(fooHash); len(h) != 1 || h[0] != s {
		t.Errorf("Holders = %v", h)
	}

	if res := mustDo(t, hc, "GET", s.URL()+"/"+fooHash+"+3+Zhint", nil); res.status != 200 || res.body != "foo" || res.header.Get("Content-Length") != "3" {
		t.Errorf("GET = %d %q %v", res.status, res.body, res.header)
	}
	if res := mustDo(t, hc, "HEAD", s.URL()+"/"+fooHash+"+3", nil); res.status != 200 || res.body != "" || res.header.Get("Content-Length") != "3" {
		t.Errorf("HEAD = %d %q %v", res.status, res.body, res.header)
	}
	if res := mustDo(t, hc, "GET", c.Server(1).URL()+"/"+fooHash+"+3", nil); res.status != 404 {
		t.Errorf("GET from other server = %d", res.status)
	}

	tests := []struct {
		method, path string
		body         string
		status       int
		text         string
	}{
		{"PUT", "/" + fooHash, "bar", 400, "hash mismatch\n"},
		{"PUT", "/" + fooHash + "+99+Zx", "foo", 200, fooHash + "+3\n"},
		{"PUT", "/xyz", "foo", 400, "bad locator\n"},
		{"PUT", "/" + strings.ToUpper(fooHash), "foo", 400, "bad locator\n"},
		{"GET", "/" + fooHash + "+3+bad", "", 400, "bad locator\n"},
		{"POST", "/" + fooHash, "foo", 400, "Bad Request\n"},
	}
	for _, tt := range tests {
		var body []byte
		if tt.body != "" {
			body = []byte(tt.body)
		}
		res := mustDo(t, hc, tt.method, c.Server(1).URL()+tt.path, body)
		if res.status != tt.status || res.body != tt.text {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, res.status, res.body, tt.status, tt.text)
		}
	}
	reqs := c.Server(1).Requests()
	if len(reqs) != 1+len(tests) {
		t.Fatalf("server 1 got %d requests", len(reqs))
	}
	for i, want := range []int64{0, 3, 3, 0, 0, 0, 0} {
		if reqs[i].BodyRead != want {
			t.Errorf("request %d (%s %s): BodyRead %d, want %d", i, reqs[i].Method, reqs[i].Path, reqs[i].BodyRead, want)
		}
	}
	if c.Server(1).PutCount() != 4 || s.PutCount() != 1 {
		t.Errorf("PutCount = %d, %d", s.PutCount(), c.Server(1).PutCount())
	}
}

func TestEmptyBlock(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	url := s.URL() + "/" + locator.EmptyHash + "+0"
	if res := mustDo(t, hc, "GET", url, nil); res.status != 404 {
		t.Errorf("GET before PUT = %d", res.status)
	}
	if res := mustDo(t, hc, "PUT", url, []byte{}); res.status != 200 || res.body != locator.EmptyHash+"+0\n" {
		t.Errorf("PUT = %d %q", res.status, res.body)
	}
	if res := mustDo(t, hc, "GET", url, nil); res.status != 200 || res.body != "" {
		t.Errorf("GET = %d %q", res.status, res.body)
	}
}

func TestScript(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	s.Script(
		Response{Status: 500, Body: "boom"},
		Response{Status: 503, Header: http.Header{"Retry-After": {"2"}}},
		Response{},
		Response{Status: 200, Body: "custom"},
	)
	s.SetDefault(Response{Status: 502})
	want := []struct {
		status int
		body   string
	}{{500, "boom"}, {503, ""}, {200, fooHash + "+3\n"}, {200, "custom"}, {502, ""}, {502, ""}}
	for i, w := range want {
		res := putFoo(t, hc, s)
		if res.status != w.status || res.body != w.body {
			t.Errorf("PUT %d = %d %q, want %d %q", i, res.status, res.body, w.status, w.body)
		}
		if i == 1 && res.header.Get("Retry-After") != "2" {
			t.Errorf("PUT %d: Retry-After = %q", i, res.header.Get("Retry-After"))
		}
	}
	s.SetDefault(Response{})
	if res := putFoo(t, hc, s); res.status != 200 {
		t.Errorf("PUT after SetDefault(zero) = %d", res.status)
	}
	if n := s.PutCount(); n != len(want)+1 {
		t.Errorf("PutCount = %d", n)
	}
	for i, r := range s.Requests() {
		if wantRead := int64(3 * btoi(r.Status == 200)); r.BodyRead != wantRead {
			t.Errorf("request %d: status %d, BodyRead %d", i, r.Status, r.BodyRead)
		}
	}

	// GET and HEAD share their own script.
	s.ScriptGet(Response{Status: 500}, Response{Status: 200, Body: "bar"})
	url := s.URL() + "/" + fooHash + "+3"
	for i, w := range []struct {
		method string
		status int
		body   string
	}{{"HEAD", 500, ""}, {"GET", 200, "bar"}, {"GET", 200, "foo"}} {
		if res := mustDo(t, hc, w.method, url, nil); res.status != w.status || res.body != w.body {
			t.Errorf("%s %d = %d %q, want %d %q", w.method, i, res.status, res.body, w.status, w.body)
		}
	}
	s.SetGetDefault(Response{Status: 504})
	if res := mustDo(t, hc, "GET", url, nil); res.status != 504 {
		t.Errorf("GET with default = %d", res.status)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// countingReader counts the bytes a client transport reads from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestRefusalsDoNotReadBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		setup  func(*Server)
		path   string
		size   int64
		status int
		body   string
	}{
		{"full", func(s *Server) { s.SetFull(true) }, "/" + fooHash, 3, 507, "insufficient storage\n"},
		{"read-only", func(s *Server) { s.SetReadOnly(true) }, "/" + fooHash, 3, 403, "read-only\n"},
		{"scripted", func(s *Server) { s.Script(Response{Status: 503, Body: "busy"}) }, "/" + fooHash, 3, 503, "busy"},
		{"bad path", func(*Server) {}, "/foo", 3, 400, "bad locator\n"},
		{"too large", func(*Server) {}, "/" + fooHash, locator.MaxBlockSize + 1, 413, "block too large\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewCluster(t, 1)
			hc := newClient(t)
			s := c.Server(0)
			tt.setup(s)
			body := &countingReader{r: io.LimitReader(neverEnding('x'), tt.size)}
			res, err := do(context.Background(), hc, "PUT", s.URL()+tt.path, body, tt.size, "Expect", "100-continue")
			if err != nil {
				t.Fatal(err)
			}
			if res.status != tt.status || res.body != tt.body {
				t.Errorf("PUT = %d %q, want %d %q", res.status, res.body, tt.status, tt.body)
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].BodyRead != 0 || reqs[0].Status != tt.status || reqs[0].Header.Get("Expect") != "100-continue" {
				t.Errorf("requests = %+v", reqs)
			}
			if n := body.n.Load(); n != 0 {
				t.Errorf("client sent %d body bytes", n)
			}
			if s.Has(fooHash) {
				t.Error("block stored")
			}
		})
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestReplicasHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		setup       func(*Server)
		want        string // "-" means absent
		wantClasses string
	}{
		{"default", func(*Server) {}, "1", "default=1"},
		{"set", func(s *Server) { s.SetReplicas(3) }, "3", "default=3"},
		{"omitted", func(s *Server) { s.SetReplicas(-1) }, "-", "default=1"},
		{"raw", func(s *Server) { s.SetReplicasHeader("two") }, "two", "default=1"},
		{"raw then set", func(s *Server) { s.SetReplicasHeader("x"); s.SetReplicas(2) }, "2", "default=2"},
		{"override", func(s *Server) { s.SetReplicasHeader("x"); s.Script(Response{Replicas: 5}) }, "5", "default=5"},
		{"override omits", func(s *Server) { s.Script(Response{Replicas: -1}) }, "-", "default=1"},
	}
	c := NewCluster(t, len(tests))
	hc := newClient(t)
	for i, tt := range tests {
		s := c.Server(i)
		tt.setup(s)
		res := putFoo(t, hc, s)
		got := "-"
		if v := res.header.Values("X-Keep-Replicas-Stored"); len(v) > 0 {
			got = v[0]
		}
		if res.status != 200 || got != tt.want || res.header.Get("X-Keep-Storage-Classes-Confirmed") != tt.wantClasses {
			t.Errorf("%s: %d replicas %q classes %q, want %q %q", tt.name, res.status, got,
				res.header.Get("X-Keep-Storage-Classes-Confirmed"), tt.want, tt.wantClasses)
		}
	}
}

func TestVolumesHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(*Server)
		want  string // "-" means absent
	}{
		{"default", func(*Server) {}, "-"},
		{"set", func(s *Server) { s.SetVolume("zzzzz-nyw5e-000000000000000") }, "zzzzz-nyw5e-000000000000000=1"},
		{"with replicas", func(s *Server) { s.SetVolume("v"); s.SetReplicas(2) }, "v=2"},
		{"replicas omitted", func(s *Server) { s.SetVolume("v"); s.SetReplicas(-1) }, "v=1"},
		{"unset", func(s *Server) { s.SetVolume("v"); s.SetVolume("") }, "-"},
		{"scripted header wins", func(s *Server) {
			s.SetVolume("v")
			s.Script(Response{Header: http.Header{"X-Keep-Volumes-Stored": {"w=x"}}})
		}, "w=x"},
		{"discarding", func(s *Server) { s.c.Discard(true); s.SetVolume("v") }, "v=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewCluster(t, 1)
			s := c.Server(0)
			tt.setup(s)
			res := putFoo(t, newClient(t), s)
			got := "-"
			if v := res.header.Values("X-Keep-Volumes-Stored"); len(v) > 0 {
				got = strings.Join(v, "; ")
			}
			if res.status != 200 || got != tt.want {
				t.Errorf("%d %q, want %q", res.status, got, tt.want)
			}
		})
	}
}

func TestClassesHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		setup     func(*Server)
		requested string // "-" sends no X-Keep-Storage-Classes
		want      string // "-" means absent
	}{
		{"default", func(*Server) {}, "-", "default=1"},
		{"default requested", func(*Server) {}, "default", "default=1"},
		{"intersection", func(s *Server) { s.SetClasses("a", "b") }, " b , c, a ,, b ", "b=1, a=1"},
		{"none requested", func(s *Server) { s.SetClasses("a", "b") }, "-", "a=1"},
		{"no match", func(s *Server) { s.SetClasses("a", "b") }, "c", "a=1"},
		{"replicas", func(s *Server) { s.SetClasses("a", "b"); s.SetReplicas(2) }, "a,b", "a=2, b=2"},
		{"no classes", func(s *Server) { s.SetClasses() }, "a", ""},
		{"omitted", func(s *Server) { s.OmitClasses() }, "default", "-"},
		{"raw", func(s *Server) { s.SetClassesHeader("=foo=1") }, "foo", "=foo=1"},
		{"raw empty", func(s *Server) { s.SetClassesHeader("") }, "foo", ""},
		{"reset by SetClasses", func(s *Server) { s.OmitClasses(); s.SetClasses("x") }, "-", "x=1"},
	}
	c := NewCluster(t, len(tests))
	hc := newClient(t)
	for i, tt := range tests {
		s := c.Server(i)
		tt.setup(s)
		var hdr []string
		if tt.requested != "-" {
			hdr = []string{"X-Keep-Storage-Classes", tt.requested}
		}
		res := putFoo(t, hc, s, hdr...)
		got := "-"
		if v := res.header.Values("X-Keep-Storage-Classes-Confirmed"); len(v) > 0 {
			got = v[0]
		}
		if res.status != 200 || got != tt.want {
			t.Errorf("%s: %d %q, want %q", tt.name, res.status, got, tt.want)
		}
	}
}

// TestClassesHeaderRefused: like keepstore, a PUT whose storage-classes
// header names too many or too long classes gets 400 without its body
// being read, and stores nothing.
func TestClassesHeaderRefused(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	many := make([]string, protocol.MaxClasses+1)
	for i := range many {
		many[i] = fmt.Sprint("c", i)
	}
	for _, h := range []string{strings.Join(many, ","), strings.Repeat("x", protocol.MaxClassLen+1)} {
		res := putFoo(t, hc, s, "X-Keep-Storage-Classes", h)
		if res.status != 400 || !strings.Contains(res.body, "X-Keep-Storage-Classes") {
			t.Errorf("classes header of %d bytes: %d %q, want 400 naming the header", len(h), res.status, res.body)
		}
	}
	for _, r := range s.Requests() {
		if r.BodyRead != 0 {
			t.Errorf("refused PUT read %d body bytes", r.BodyRead)
		}
	}
	if s.Has(fooHash) {
		t.Error("a refused PUT stored the block")
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	const d = 100 * time.Millisecond
	s.Script(Response{Delay: d})
	start := time.Now()
	if res := putFoo(t, hc, s); res.status != 200 {
		t.Errorf("PUT = %d", res.status)
	}
	if el := time.Since(start); el < d {
		t.Errorf("answered after %v, want at least %v", el, d)
	}
}

// A held request is answered when, and only when, its Hold is closed,
// and has read none of its body meanwhile.
func TestHold(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	s := c.Server(0)
	hold := make(chan struct{})
	s.Script(Response{Hold: hold})
	errc := startPut(waitCtx(t), newClient(t), s, foo, "Expect", "100-continue")
	if err := s.WaitHeld(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if r := s.Requests(); len(r) != 1 || r[0].Status != 0 || r[0].BodyRead != 0 {
		t.Fatalf("held request %+v", r)
	}
	close(hold)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if r := s.Requests(); r[0].Status != 200 || !s.Has(fooHash) || s.Held() != 0 {
		t.Errorf("after the hold: %+v, stored %v, held %d", r, s.Has(fooHash), s.Held())
	}
}

// A hold ends, with no answer, when the client goes away.
func TestHoldEndsWhenClientGoesAway(t *testing.T) {
	t.Parallel()
	if !canWatchPeer {
		t.Skip("servers cannot see a client hang up mid-upload on this platform")
	}
	c := NewCluster(t, 1)
	s := c.Server(0)
	s.Script(Response{Hold: make(chan struct{})})
	ctx, cancel := context.WithCancel(waitCtx(t))
	errc := startPut(ctx, newClient(t), s, foo, "Expect", "100-continue")
	if err := s.WaitHeld(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("PUT: %v", err)
	}
	if err := c.WaitIdle(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if r := s.Requests(); r[0].Status != 0 || s.Has(fooHash) {
		t.Errorf("abandoned held request %+v, stored %v", r, s.Has(fooHash))
	}
}

// startPut sends a PUT of foo in the background and returns a channel
// that yields its error.
func startPut(ctx context.Context, hc *http.Client, s *Server, body []byte, hdr ...string) <-chan error {
	hash := locator.New(body).Hash
	errc := make(chan error, 1)
	go func() {
		_, err := do(ctx, hc, "PUT", s.URL()+"/"+hash, bytes.NewReader(body), int64(len(body)), hdr...)
		errc <- err
	}()
	return errc
}

func TestDelayEndsWhenClientGoesAway(t *testing.T) {
	t.Parallel()
	if !canWatchPeer {
		t.Skip("servers cannot see a client hang up mid-upload on this platform")
	}
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	s.Script(Response{Delay: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := startPut(ctx, hc, s, foo, "Expect", "100-continue")
	if err := c.WaitRequests(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("PUT error = %v", err)
	}
	if err := c.WaitIdle(waitCtx(t)); err != nil {
		t.Fatalf("handler still running: %v", err)
	}
	if r := s.Requests(); len(r) != 1 || r[0].Status != 0 || r[0].BodyRead != 0 {
		t.Errorf("requests = %+v", r)
	}
	if s.Has(fooHash) {
		t.Error("block stored")
	}
}

func TestStallEndsWhenClientGoesAway(t *testing.T) {
	t.Parallel()
	if !canWatchPeer {
		t.Skip("servers cannot see a client hang up mid-upload on this platform")
	}
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	s.Script(Response{Stall: true, StallAfter: 10})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := startPut(ctx, hc, s, bytes.Repeat([]byte("x"), 100))
	if err := s.WaitStalled(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if r := s.Requests(); len(r) != 1 || r[0].BodyRead != 10 || r[0].Status != 0 {
		t.Errorf("requests while stalled = %+v", r)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("PUT error = %v", err)
	}
	if err := c.WaitIdle(waitCtx(t)); err != nil {
		t.Fatalf("handler still running: %v", err)
	}
	if n := s.Stalled(); n != 0 {
		t.Errorf("Stalled = %d", n)
	}
	if r := s.Requests(); r[0].Status != 0 || r[0].BodyRead != 10 {
		t.Errorf("requests = %+v", r)
	}
}

func TestStallEndsWhenClusterCloses(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 2)
	hc := newClient(t)
	c.Server(0).Script(Response{Stall: true})
	c.Server(1).ScriptGet(Response{Stall: true})
	c.Server(1).Store(foo)
	errc := startPut(context.Background(), hc, c.Server(0), foo, "Expect", "100-continue")
	getc := make(chan error, 1)
	go func() {
		_, err := do(context.Background(), hc, "GET", c.Server(1).URL()+"/"+fooHash+"+3", nil, 0)
		getc <- err
	}()
	for _, s := range c.Servers() {
		if err := s.WaitStalled(waitCtx(t), 1); err != nil {
			t.Fatal(err)
		}
	}
	if r := c.Server(0).Requests(); len(r) != 1 || r[0].BodyRead != 0 {
		t.Errorf("requests = %+v", r)
	}
	c.Close()
	if err := <-errc; err == nil {
		t.Error("stalled PUT succeeded")
	}
	if err := <-getc; err == nil {
		t.Error("stalled GET succeeded")
	}
	for _, r := range c.Requests() {
		if r.Status != 0 {
			t.Errorf("request %+v has a status", r)
		}
	}
	c.Close() // idempotent
}

func TestStallGetMidBody(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	data := []byte("0123456789")
	loc := s.Store(data)
	s.ScriptGet(Response{Stall: true, StallAfter: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"/"+loc, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "0123" || resp.ContentLength != 10 {
		t.Fatalf("read %q, %v; Content-Length %d", buf, err, resp.ContentLength)
	}
	if err := s.WaitStalled(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("read the rest of a stalled body")
	}
	if err := c.WaitIdle(waitCtx(t)); err != nil {
		t.Fatalf("handler still running: %v", err)
	}
	if r := s.Requests(); len(r) != 1 || r[0].Status != 200 {
		t.Errorf("requests = %+v", r)
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	s := c.Server(0)
	s.Script(Response{Reset: true})
	s.ScriptGet(Response{Reset: true})
	if _, err := do(context.Background(), newClient(t), "PUT", s.URL()+"/"+fooHash, bytes.NewReader(foo), 3); err == nil {
		t.Error("reset PUT succeeded")
	}
	if _, err := do(context.Background(), newClient(t), "GET", s.URL()+"/"+fooHash, nil, 0); err == nil {
		t.Error("reset GET succeeded")
	}
	if res := putFoo(t, newClient(t), s); res.status != 200 {
		t.Errorf("PUT after reset = %d", res.status)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Status != 0 || reqs[1].Status != 0 || reqs[2].Status != 200 {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestRate(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	const rate = 20000
	data := bytes.Repeat([]byte("z"), 4000) // 200ms at rate
	hash := locator.New(data).Hash
	s.Script(Response{Rate: rate})
	start := time.Now()
	if res := mustDo(t, hc, "PUT", s.URL()+"/"+hash, data); res.status != 200 {
		t.Errorf("PUT = %d", res.status)
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Errorf("slow PUT took %v", el)
	}
	if r := s.Requests(); r[0].BodyRead != 4000 {
		t.Errorf("BodyRead = %d", r[0].BodyRead)
	}

	// A GET sends one 1000-byte chunk every 1/20 s: the last after 150ms.
	s.ScriptGet(Response{Rate: rate})
	start = time.Now()
	if res := mustDo(t, hc, "GET", s.URL()+"/"+hash, nil); res.status != 200 || res.body != string(data) {
		t.Errorf("GET = %d, %d bytes", res.status, len(res.body))
	}
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("slow GET took %v", el)
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 2)
	hc := newClient(t)
	s := c.Server(0)
	// Leave an idle keep-alive connection, which Kill must close too.
	if res := mustDo(t, hc, "GET", s.URL()+"/"+fooHash, nil); res.status != 404 {
		t.Fatalf("GET = %d", res.status)
	}
	s.Kill()
	s.Kill()
	if _, err := do(context.Background(), hc, "GET", s.URL()+"/"+fooHash, nil, 0); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET from killed server: %v, want connection refused", err)
	}
	if _, err := do(context.Background(), newClient(t), "PUT", s.URL()+"/"+fooHash, bytes.NewReader(foo), 3); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("PUT to killed server: %v, want connection refused", err)
	}
	if res := putFoo(t, hc, c.Server(1)); res.status != 200 {
		t.Errorf("PUT to live server = %d", res.status)
	}
	if n := len(s.Requests()); n != 1 {
		t.Errorf("killed server recorded %d requests", n)
	}
	if svcs := c.Services(); len(svcs) != 2 {
		t.Errorf("Services = %v", svcs)
	}
}

func TestCorrupt(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	data := []byte("some block data")
	loc := s.Store(data)
	s.SetCorrupt(true)
	res := mustDo(t, hc, "GET", s.URL()+"/"+loc, nil)
	if res.status != 200 || len(res.body) != len(data) {
		t.Fatalf("GET = %d %q", res.status, res.body)
	}
	diff := 0
	for i := range data {
		if res.body[i] != data[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Errorf("corrupt GET differs in %d bytes: %q", diff, res.body)
	}
	if res := mustDo(t, hc, "HEAD", s.URL()+"/"+loc, nil); res.status != 200 {
		t.Errorf("HEAD = %d", res.status)
	}
	if b, _ := s.Block(loc); !bytes.Equal(b, data) {
		t.Errorf("stored block changed: %q", b)
	}
	s.SetCorrupt(false)
	if res := mustDo(t, hc, "GET", s.URL()+"/"+loc, nil); res.body != string(data) {
		t.Errorf("GET after SetCorrupt(false) = %q", res.body)
	}
}

func TestRequestRecording(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 3)
	hc := newClient(t)
	putFoo(t, hc, c.Server(0), "X-Keep-Desired-Replicas", "2", "Authorization", "Bearer tok")
	mustDo(t, hc, "GET", c.Server(1).URL()+"/"+fooHash+"+3", nil)
	putFoo(t, hc, c.Server(2), "X-Keep-Storage-Classes", "a, b")
	mustDo(t, hc, "HEAD", c.Server(0).URL()+"/"+fooHash+"+3", nil)

	want := []struct {
		server int
		method string
		status int
	}{{0, "PUT", 200}, {1, "GET", 404}, {2, "PUT", 200}, {0, "HEAD", 200}}
	reqs := c.Requests()
	if len(reqs) != len(want) {
		t.Fatalf("got %d requests", len(reqs))
	}
	for i, w := range want {
		r := reqs[i]
		if r.Seq != i+1 || r.Server != c.Server(w.server).UUID() || r.Method != w.method || r.Status != w.status {
			t.Errorf("request %d = %+v, want %+v", i, r, w)
		}
	}
	if h := reqs[0].Header; h.Get("X-Keep-Desired-Replicas") != "2" || h.Get("Authorization") != "Bearer tok" {
		t.Errorf("PUT headers = %v", h)
	}
	if reqs[0].Path != "/"+fooHash || reqs[1].Path != "/"+fooHash+"+3" {
		t.Errorf("paths %q, %q", reqs[0].Path, reqs[1].Path)
	}
	puts := c.PutRequests()
	if len(puts) != 2 || puts[0].Seq != 1 || puts[1].Seq != 3 || puts[1].Header.Get("X-Keep-Storage-Classes") != "a, b" {
		t.Errorf("PutRequests = %+v", puts)
	}
	if r := c.Server(0).Requests(); len(r) != 2 || r[0].Seq != 1 || r[1].Seq != 4 {
		t.Errorf("server 0 requests = %+v", r)
	}
	// Accessors return copies.
	reqs[0].Header.Set("X-Keep-Desired-Replicas", "9")
	if c.Requests()[0].Header.Get("X-Keep-Desired-Replicas") != "2" {
		t.Error("modifying a returned Request changed the record")
	}
}

func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 3)
	hc := newClient(t)
	const n = 30
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			data := []byte(fmt.Sprint("block ", i))
			s := c.Server(i % 3)
			res, err := do(context.Background(), hc, "PUT", s.URL()+"/"+locator.New(data).Hash, bytes.NewReader(data), int64(len(data)))
			if err == nil && res.status != 200 {
				err = fmt.Errorf("status %d", res.status)
			}
			errc <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	reqs := c.Requests()
	if len(reqs) != n {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		if r.Seq != i+1 {
			t.Errorf("request %d has Seq %d", i, r.Seq)
		}
	}
}

func TestServicesAndProbeOrder(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 3)
	svcs := c.Services()
	for i, svc := range svcs {
		s := c.Server(i)
		if svc.UUID != fmt.Sprintf("zzzzz-bi6l4-%015d", i) || svc.UUID != s.UUID() || svc.URL() != s.URL() ||
			svc.Type != "disk" || svc.ReadOnly || svc != s.Service() {
			t.Errorf("service %d = %+v, server URL %s", i, svc, s.URL())
		}
	}
	c.Server(1).SetType("proxy")
	c.Server(2).SetReadOnly(true)
	if svcs := c.Services(); svcs[1].Type != keepclient.TypeProxy || !svcs[2].ReadOnly || svcs[0].Type != "disk" {
		t.Errorf("services after changes = %+v", svcs)
	}
	// Vector B of the protocol reference: order 0, 2, 1.
	for _, h := range []string{fooHash, fooHash + "+3"} {
		order := c.ProbeOrder(h)
		if len(order) != 3 || order[0] != c.Server(0) || order[1] != c.Server(2) || order[2] != c.Server(1) {
			t.Errorf("ProbeOrder(%s) = %v", h, order)
		}
	}
	if got := c.Servers(); len(got) != 3 || got[2] != c.Server(2) {
		t.Errorf("Servers = %v", got)
	}
}

func TestSigning(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	hc := newClient(t)
	s := c.Server(0)
	signer := locator.Signer{Key: []byte("abcdefg"), TTL: time.Hour}
	c.SetSigner(signer)
	res := putFoo(t, hc, s, "Authorization", "Bearer xyzzy")
	l, err := locator.Parse(strings.TrimSuffix(res.body, "\n"))
	if err != nil || res.status != 200 {
		t.Fatalf("PUT = %d %q: %v", res.status, res.body, err)
	}
	if err := signer.Verify(l, "xyzzy", time.Now()); err != nil {
		t.Errorf("PUT result %s: %v", l, err)
	}
	if res := putFoo(t, hc, s); res.body != fooHash+"+3\n" {
		t.Errorf("PUT without token = %q", res.body)
	}

	c.RequireSignatures(true)
	url := s.URL() + "/"
	tests := []struct {
		loc, token string
		status     int
	}{
		{fooHash + "+3", "", 401},
		{fooHash + "+3", "xyzzy", 400},
		{l.String(), "other", 400},
		{l.String(), "xyzzy", 200},
		{c.Sign(fooHash+"+3", "other"), "other", 200},
		{signer.Sign(locator.New(foo), "xyzzy", time.Now().Add(-time.Minute)).String(), "xyzzy", 401},
	}
	for _, tt := range tests {
		var hdr []string
		if tt.token != "" {
			hdr = []string{"Authorization", "OAuth2 " + tt.token}
		}
		if res := mustDo(t, hc, "GET", url+tt.loc, nil, hdr...); res.status != tt.status {
			t.Errorf("GET %s with %q = %d %q, want %d", tt.loc, tt.token, res.status, res.body, tt.status)
		}
	}
	c.RequireSignatures(false)
	if res := mustDo(t, hc, "HEAD", url+fooHash, nil); res.status != 200 {
		t.Errorf("unsigned HEAD with signatures off = %d", res.status)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	c := NewCluster(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Server(0).WaitStalled(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitStalled = %v", err)
	}
	if err := c.WaitRequests(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitRequests = %v", err)
	}
	if err := c.WaitIdle(ctx); err != nil {
		t.Errorf("WaitIdle on an idle cluster = %v", err)
	}
}

func TestStartClose(t *testing.T) {
	t.Parallel()
	c := Start(2)
	c.Server(1).Kill()
	c.Close()
	c.Close()
	if _, err := do(context.Background(), newClient(t), "GET", c.Server(0).URL()+"/"+fooHash, nil, 0); err == nil {
		t.Error("GET after Close succeeded")
	}
}

// A discarded block answers HEAD with its size; its data is gone.
func TestDiscardHead(t *testing.T) {
	c := NewCluster(t, 1)
	c.Discard(true)
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), Token: "t", Replicas: 1, MaxPasses: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	data := []byte("discarded block")
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := kc.Head(context.Background(), res.Locator); err != nil || n != int64(len(data)) {
		t.Errorf("HEAD of a discarded block: %d, %v", n, err)
	}
	if _, err := kc.Get(context.Background(), res.Locator, nil); err == nil {
		t.Error("GET of a discarded block succeeded")
	}
}
