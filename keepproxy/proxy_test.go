package keepproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/version"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepproxy"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startProxy runs a proxy in front of the cluster and returns its URL.
func startProxy(t *testing.T, c *keeptest.Cluster) *httptest.Server {
	t.Helper()
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(keepproxy.New(kc, nil))
	t.Cleanup(func() {
		srv.Close()
		kc.Close()
	})
	return srv
}

func put(t *testing.T, url string, data []byte, hdr map[string]string) *http.Response {
	t.Helper()
	l := locator.New(data)
	req, _ := http.NewRequest("PUT", url+"/"+l.Hash, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer tok")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestProxyDesiredReplicas(t *testing.T) {
	for _, want := range []int{0, 1, 2, 3} {
		t.Run(fmt.Sprint(want), func(t *testing.T) {
			c := keeptest.NewCluster(t, 4)
			p := startProxy(t, c)
			data := []byte(fmt.Sprint("desired ", want))
			resp := put(t, p.URL, data, map[string]string{"X-Keep-Desired-Replicas": strconv.Itoa(want)})
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Header.Get("X-Keep-Replicas-Stored") != strconv.Itoa(want) {
				t.Fatalf("status %d, stored %q: %s", resp.StatusCode, resp.Header.Get("X-Keep-Replicas-Stored"), body)
			}
			if n := len(c.Holders(locator.New(data).Hash)); n != want {
				t.Errorf("%d holders, want %d", n, want)
			}
			if !strings.HasPrefix(string(body), locator.New(data).String()) {
				t.Errorf("body %q", body)
			}
		})
	}
}

func TestProxyDefaultIsTwoAndPassesToken(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	p := startProxy(t, c)
	resp := put(t, p.URL, []byte("default"), nil)
	if resp.StatusCode != 200 || resp.Header.Get("X-Keep-Replicas-Stored") != "2" {
		t.Fatalf("status %d stored %s", resp.StatusCode, resp.Header.Get("X-Keep-Replicas-Stored"))
	}
	for _, r := range c.PutRequests() {
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("upstream Authorization %q", r.Header.Get("Authorization"))
		}
		if !strings.Contains(r.Header.Get("Via"), "keepproxy") {
			t.Error("upstream request without Via")
		}
	}
}

func TestProxyPartialStoreStill200(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	p := startProxy(t, c)
	resp := put(t, p.URL, []byte("partial"), map[string]string{"X-Keep-Desired-Replicas": "3"})
	if resp.StatusCode != 200 || resp.Header.Get("X-Keep-Replicas-Stored") != "2" {
		t.Fatalf("status %d stored %s", resp.StatusCode, resp.Header.Get("X-Keep-Replicas-Stored"))
	}
}

func TestProxyFailureStatuses(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(*keeptest.Server)
		status int
		retry  bool
	}{
		{"all full", func(s *keeptest.Server) { s.SetFull(true) }, 507, false},
		{"all busy", func(s *keeptest.Server) {
			s.SetDefault(keeptest.Response{Status: 503, Header: http.Header{"Retry-After": {"0"}}})
		}, 503, true},
		{"all failing", func(s *keeptest.Server) { s.SetDefault(keeptest.Response{Status: 500}) }, 502, false},
		{"all down", func(s *keeptest.Server) { s.Kill() }, 502, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := keeptest.NewCluster(t, 2)
			for _, s := range c.Servers() {
				tt.setup(s)
			}
			p := startProxy(t, c)
			resp := put(t, p.URL, []byte("fail "+tt.name), nil)
			if resp.StatusCode != tt.status || resp.Header.Get("X-Keep-Replicas-Stored") != "0" {
				t.Fatalf("status %d, stored %q", resp.StatusCode, resp.Header.Get("X-Keep-Replicas-Stored"))
			}
			if tt.retry && resp.Header.Get("Retry-After") == "" {
				t.Error("busy answer without Retry-After")
			}
		})
	}
}

func TestProxyBadRequests(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	p := startProxy(t, c)
	data := []byte("bad requests")
	l := locator.New(data)
	tests := []struct {
		name   string
		path   string
		body   string
		length string
		auth   bool
		status int
	}{
		{"no token", "/" + l.Hash, string(data), "", false, 401},
		{"bad hash", "/xyz", string(data), "", true, 400},
		{"size hint mismatch", "/" + l.Hash + "+99", string(data), "", true, 400},
		{"hash mismatch", "/" + l.Hash, "other data!!", "", true, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("PUT", p.URL+tt.path, strings.NewReader(tt.body))
			if tt.auth {
				req.Header.Set("Authorization", "Bearer tok")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	if n := len(c.PutRequests()); n != 0 {
		t.Errorf("%d bad requests reached the servers", n)
	}
	// Missing Content-Length: 411, over a raw connection.
	conn, err := net.Dial("tcp", p.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", l.Hash)
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	if !strings.Contains(string(buf[:n]), " 411 ") {
		t.Errorf("chunked PUT answered %q, want 411", buf[:n])
	}
}

func TestProxyLoopDetected(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	p := startProxy(t, c)
	req, _ := http.NewRequest("PUT", p.URL+"/"+locator.New([]byte("x")).Hash, strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Via", "HTTP/1.1 keepproxy")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 500 {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestProxyGet(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data := []byte("read through the proxy")
	l := locator.New(data)
	c.ProbeOrder(l.Hash)[2].Store(data)
	p := startProxy(t, c)
	for _, tt := range []struct {
		method string
		loc    string
		status int
		body   string
	}{
		{"GET", l.String(), 200, string(data)},
		{"HEAD", l.String(), 200, ""},
		{"GET", locator.New([]byte("absent")).String(), 404, ""},
	} {
		req, _ := http.NewRequest(tt.method, p.URL+"/"+tt.loc, nil)
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || (tt.status == 200 && string(body) != tt.body) {
			t.Errorf("%s %s: %d %q", tt.method, tt.loc, resp.StatusCode, body)
		}
		if tt.method == "HEAD" && resp.ContentLength != int64(len(data)) {
			t.Errorf("HEAD Content-Length %d", resp.ContentLength)
		}
	}
}

// A client that writes through the proxy follows the rules for non-disk
// services: one upload, counting the replicas the proxy reports.
func TestClientThroughProxy(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	p := startProxy(t, c)
	host, port, _ := net.SplitHostPort(p.Listener.Addr().String())
	pn, _ := strconv.Atoi(port)
	kc, err := keepclient.New(keepclient.Options{
		Services: []keepclient.Service{{UUID: "zzzzz-bi6l4-proxy0000000000", Host: host, Port: pn, Type: keepclient.TypeProxy}},
		Token:    "tok",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	data := []byte("through")
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	if err != nil || res.Replicas != 3 || len(res.Attempts) != 1 {
		t.Fatalf("Put: %v %+v", err, res)
	}
	if n := len(c.Holders(locator.New(data).Hash)); n != 3 {
		t.Errorf("%d holders", n)
	}
	// Five replicas from four servers: the proxy stores 4 and says so,
	// and the client reports the shortfall.
	_, err = kc.Put(context.Background(), []byte("too many"), keepclient.PutOptions{Replicas: 5})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) || ire.Stored != 4 {
		t.Fatalf("Put of 5: %v", err)
	}
}

// The proxy names the volumes its servers stored the block on, when
// every one of them named its volumes.
func TestProxyPassesVolumes(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(order []*keeptest.Server)
		volumes string // "-" for no header
	}{
		{"every server names its volume", func(o []*keeptest.Server) {
			o[0].SetVolume("zzzzz-nyw5e-000000000000000")
			o[1].SetVolume("zzzzz-nyw5e-000000000000001")
			o[1].SetReplicas(2)
		}, "zzzzz-nyw5e-000000000000000=1, zzzzz-nyw5e-000000000000001=2"},
		{"one names none", func(o []*keeptest.Server) { o[0].SetVolume("zzzzz-nyw5e-000000000000000") }, "-"},
		{"none does", func([]*keeptest.Server) {}, "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := keeptest.NewCluster(t, 3)
			data := []byte("volumes through the proxy: " + tt.name)
			order := c.ProbeOrder(locator.New(data).Hash)
			tt.setup(order)
			order[2].SetFull(true) // both answers are needed for 3 in all
			p := startProxy(t, c)
			resp := put(t, p.URL, data, map[string]string{"X-Keep-Desired-Replicas": "3"})
			got := "-"
			if v := resp.Header.Values("X-Keep-Volumes-Stored"); len(v) > 0 {
				got = strings.Join(v, "; ")
			}
			if resp.StatusCode != 200 || got != tt.volumes {
				t.Errorf("status %d, volumes %q; want 200, %q", resp.StatusCode, got, tt.volumes)
			}
		})
	}
}

// A client writing through two proxies in front of the same servers
// counts each volume once: the second proxy, asked for the whole N,
// writes what is missing and names the volumes the first one used too.
func TestClientThroughTwoProxiesCountsVolumes(t *testing.T) {
	tests := []struct {
		name    string
		servers int
		stored  int
		holders int
	}{
		// The first proxy stores one of two (the second server fails it
		// on every pass); the second stores the other.
		{"two servers", 2, 2, 2},
		// Both proxies can store on the one volume only: one of two.
		{"one server", 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := keeptest.NewCluster(t, tt.servers)
			data := []byte("through two proxies: " + tt.name)
			hash := locator.New(data).Hash
			for i, s := range c.Servers() {
				s.SetVolume(fmt.Sprintf("zzzzz-nyw5e-%015d", i))
			}
			if tt.servers > 1 {
				// Each proxy's client makes 3 passes.
				c.ProbeOrder(hash)[1].Script(keeptest.Response{Status: 500}, keeptest.Response{Status: 500}, keeptest.Response{Status: 500})
			}
			var proxies []keepclient.Service
			for i := range 2 {
				p := startProxy(t, c)
				host, port, _ := net.SplitHostPort(p.Listener.Addr().String())
				pn, _ := strconv.Atoi(port)
				proxies = append(proxies, keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-proxy%010d", i), Host: host, Port: pn, Type: keepclient.TypeProxy})
			}
			kc, err := keepclient.New(keepclient.Options{Services: proxies, Token: "tok", RetryDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
			var ire *keepclient.InsufficientReplicasError
			switch {
			case tt.stored == 2 && err != nil:
				t.Fatalf("Put: %v", err)
			case tt.stored < 2 && (!errors.As(err, &ire) || ire.Stored != tt.stored):
				t.Fatalf("Put: %v, want %d stored of 2", err, tt.stored)
			}
			if res.Replicas != tt.stored || len(res.Attempts) != 2 || len(c.Holders(hash)) != tt.holders {
				t.Errorf("stored %d in %d uploads on %d servers; want %d in 2 on %d (attempts %+v)", res.Replicas, len(res.Attempts), len(c.Holders(hash)), tt.stored, tt.holders, res.Attempts)
			}
		})
	}
}

func TestProxyBusy(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	c.Server(0).Script(keeptest.Response{Stall: true})
	kc, _ := keepclient.New(keepclient.Options{Services: c.Services(), StallTimeout: time.Minute})
	defer kc.Close()
	px := keepproxy.New(kc, nil)
	px.SetMaxRequests(1)
	srv := httptest.NewServer(px)
	defer srv.Close()
	// The first upload holds the only slot while its server stalls.
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("PUT", srv.URL+"/"+locator.New([]byte("first")).Hash, strings.NewReader("first"))
		req.Header.Set("Authorization", "Bearer tok")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	c.Server(0).WaitStalled(context.Background(), 1)
	resp := put(t, srv.URL, []byte("second"), nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	c.Close()
	<-done
}

// TestProxyHealth: /_health/ping answers {"health": "OK"}, as monitors of
// Arvados services expect, and names the running build.
func TestProxyHealth(t *testing.T) {
	srv := startProxy(t, keeptest.NewCluster(t, 1))
	resp, err := http.Get(srv.URL + "/_health/ping")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct{ Health, Version string }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /_health/ping: %d %v", resp.StatusCode, err)
	}
	if h.Health != "OK" || h.Version != version.String() || h.Version == "" {
		t.Errorf("GET /_health/ping = %+v, want health OK and version %q", h, version.String())
	}
}
