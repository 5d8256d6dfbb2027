package keepproxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepproxy"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// startProxyWith runs a proxy with opts in front of the cluster, sending
// its internal events to events when that is not nil.
func startProxyWith(t *testing.T, c *keeptest.Cluster, opts keepproxy.Options, events chan<- string) (*httptest.Server, *keepproxy.Proxy) {
	t.Helper()
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	px := keepproxy.NewWithOptions(kc, opts)
	if events != nil {
		keepproxy.SetHook(px, func(e string) { events <- e })
	}
	srv := httptest.NewServer(px)
	t.Cleanup(func() {
		srv.Close()
		px.Close()
		kc.Close()
	})
	return srv, px
}

// hangGuard is a context that ends a hung test long after it should
// have finished; it is not a timing assertion.
func hangGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitEvents waits for n events named name.
func waitEvents(ctx context.Context, t *testing.T, events <-chan string, name string, n int) {
	t.Helper()
	for got := 0; got < n; {
		select {
		case e := <-events:
			if e == name {
				got++
			}
		case <-ctx.Done():
			t.Fatalf("saw %d of %d %q events", got, n, name)
		}
	}
}

// TestTricklersDoNotLockOut: 40 clients that announce 64 MiB PUTs and
// trickle their bodies hold no write slot and almost no memory, so a
// normal PUT and GET through the proxy succeed while they are all still
// connected. (The proxy they once knocked over gave every request 503.)
func TestTricklersDoNotLockOut(t *testing.T) {
	const tricklers = 40
	c := keeptest.NewCluster(t, 2)
	events := make(chan string, tricklers)
	// A long window: the tricklers stay until the test closes them.
	srv, px := startProxyWith(t, c, keepproxy.Options{MaxWrites: 2, MaxReads: 2, RateWindow: time.Hour}, events)
	ctx := hangGuard(t)
	tctx, stop := context.WithCancel(ctx)
	var conns []net.Conn
	for range tricklers {
		conns = append(conns, keeptest.Trickle(tctx, t, srv.Listener.Addr().String(), "tok", 100*time.Millisecond))
	}
	waitEvents(ctx, t, events, "receiving", tricklers)

	data := []byte("an honest block among tricklers")
	resp := put(t, srv.URL, data, nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Keep-Replicas-Stored") != "2" {
		t.Fatalf("normal PUT among %d tricklers: %d %q", tricklers, resp.StatusCode, body)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/"+locator.New(data).String(), nil)
	req.Header.Set("Authorization", "Bearer tok")
	gresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(gresp.Body)
	gresp.Body.Close()
	if gresp.StatusCode != 200 || string(got) != string(data) {
		t.Fatalf("normal GET among %d tricklers: %d %q", tricklers, gresp.StatusCode, got)
	}
	st := px.Stats()
	if st.Receiving != tricklers {
		t.Errorf("%d bodies still being received, want all %d tricklers", st.Receiving, tricklers)
	}
	// Each trickler holds one smallest buffer, not the 64 MiB it announced.
	if limit := int64(tricklers+4) * 128 << 10; st.BufferBytes > limit {
		t.Errorf("proxy holds %d bytes of buffers for %d tricklers, want under %d", st.BufferBytes, tricklers, limit)
	}
	stop()
	for _, conn := range conns {
		conn.Close()
	}
	if n := len(c.Holders(locator.New([]byte("never sent")).Hash)); n != 0 {
		t.Errorf("trickled block stored on %d servers", n)
	}
}

// TestSlowBodyGets408: a body that falls below the minimum rate is
// answered 408 and its connection closed, while a normal PUT on the same
// proxy succeeds.
func TestSlowBodyGets408(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	srv, px := startProxyWith(t, c, keepproxy.Options{MinRate: 1 << 20, RateWindow: 200 * time.Millisecond}, nil)
	ctx := hangGuard(t)
	conn := keeptest.Trickle(ctx, t, srv.Listener.Addr().String(), "tok", 20*time.Millisecond)
	conn.SetReadDeadline(time.Now().Add(time.Minute)) // hang guard
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to a trickled body: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(msg), "too slowly") {
		t.Errorf("trickled body answered %d %q, want 408", resp.StatusCode, msg)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection still open after 408: %v", err)
	}
	if r := put(t, srv.URL, []byte("fast enough"), map[string]string{"X-Keep-Desired-Replicas": "1"}); r.StatusCode != 200 {
		t.Errorf("normal PUT after a 408: %d", r.StatusCode)
	}
	if st := px.Stats(); st.Receiving != 0 {
		t.Errorf("%d bodies still being received", st.Receiving)
	}
}

// TestReadsNotStarvedByWrites: with every write slot held by PUTs whose
// servers stall, GETs are still served.
func TestReadsNotStarvedByWrites(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	stored := []byte("readable while writes stall")
	c.Server(0).Store(stored)
	c.Server(0).SetDefault(keeptest.Response{Stall: true})
	srv, _ := startProxyWith(t, c, keepproxy.Options{MaxWrites: 2, MaxReads: 1}, nil)
	ctx := hangGuard(t)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			data := fmt.Appendf(nil, "stalled write %d", i)
			req, _ := http.NewRequestWithContext(ctx, "PUT", srv.URL+"/"+locator.New(data).Hash, strings.NewReader(string(data)))
			req.Header.Set("Authorization", "Bearer tok")
			req.Header.Set("X-Keep-Desired-Replicas", "1")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	if err := c.Server(0).WaitStalled(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if r := put(t, srv.URL, []byte("third write"), nil); r.StatusCode != 503 {
		t.Errorf("third write with both write slots held: %d, want 503", r.StatusCode)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/"+locator.New(stored).String(), nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != string(stored) {
		t.Errorf("GET with every write slot held: %d %q", resp.StatusCode, got)
	}
	c.Close()
	wg.Wait()
}

// TestSlowReaderCutOff: a client that stops reading a GET response is
// cut off once it falls below the minimum rate, freeing its read slot
// and buffer for others.
func TestSlowReaderCutOff(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	big := make([]byte, 16<<20) // more than the sockets between can hold
	for i := range big {
		big[i] = byte(i * 7)
	}
	c.Server(0).Store(big)
	events := make(chan string, 4)
	srv, px := startProxyWith(t, c, keepproxy.Options{MaxReads: 1, MinRate: 1 << 20, RateWindow: 300 * time.Millisecond}, events)
	ctx := hangGuard(t)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /%s HTTP/1.1\r\nHost: proxy\r\nAuthorization: Bearer tok\r\n\r\n", locator.New(big))
	waitEvents(ctx, t, events, "response cut", 1)
	if st := px.Stats(); st.Reading != 0 {
		t.Errorf("%d reads in progress after the cut", st.Reading)
	}
	small := []byte("read after the cut")
	c.Server(0).Store(small)
	req, _ := http.NewRequest("GET", srv.URL+"/"+locator.New(small).String(), nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET with the only read slot freed by the cut: %d", resp.StatusCode)
	}
}

// TestSlowServersOutlastRateWindow: the rate rule applies to the client's
// body only. A PUT or GET whose servers take longer than the window to
// answer still succeeds (the deadline must not linger and cancel the
// request while the proxy waits on the servers).
func TestSlowServersOutlastRateWindow(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	const window = 100 * time.Millisecond
	srv, _ := startProxyWith(t, c, keepproxy.Options{MinRate: 1 << 20, RateWindow: window}, nil)
	slow := keeptest.Response{Delay: 5 * window}
	c.Server(0).Script(slow)
	data := []byte("written past the window")
	resp := put(t, srv.URL, data, map[string]string{"X-Keep-Desired-Replicas": "1"})
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		t.Errorf("PUT to a server slower than the window: %d %q", resp.StatusCode, msg)
	}
	c.Server(0).ScriptGet(slow)
	req, _ := http.NewRequest("GET", srv.URL+"/"+locator.New(data).String(), nil)
	req.Header.Set("Authorization", "Bearer tok")
	gresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(gresp.Body)
	gresp.Body.Close()
	if gresp.StatusCode != 200 || string(got) != string(data) {
		t.Errorf("GET from a server slower than the window: %d %q", gresp.StatusCode, clip(string(got)))
	}
}
