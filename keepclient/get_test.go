package keepclient_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

func getTargets(c *keeptest.Cluster) []string {
	var out []string
	for _, r := range c.Requests() {
		if r.Method == "GET" || r.Method == "HEAD" {
			out = append(out, r.Server)
		}
	}
	return out
}

func TestGetFallback(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data := []byte("fallback data")
	loc := locator.New(data)
	order := c.ProbeOrder(loc.Hash)
	order[2].Store(data)
	kc := newClient(t, c)
	got, err := kc.Get(context.Background(), loc, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if want := uuidsOf(order[:3]); strings.Join(getTargets(c), " ") != strings.Join(want, " ") {
		t.Errorf("asked %v, want %v", getTargets(c), want)
	}
}

func TestGetNotFound(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := newClient(t, c)
	loc := locator.New([]byte("absent"))
	_, err := kc.Get(context.Background(), loc, nil)
	var nf *keepclient.NotFoundError
	if !errors.As(err, &nf) || nf.Services != 3 {
		t.Fatalf("Get: %v", err)
	}
	if n := len(getTargets(c)); n != 3 {
		t.Errorf("%d requests, want 3 (404s are not retried)", n)
	}
}

func TestGetMixedFailureIsNotNotFound(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	loc := locator.New([]byte("mixed"))
	order := c.ProbeOrder(loc.Hash)
	order[0].ScriptGet(keeptest.Response{Status: 500}, keeptest.Response{Status: 500}, keeptest.Response{Status: 500})
	kc := newClient(t, c)
	_, err := kc.Get(context.Background(), loc, nil)
	var nf *keepclient.NotFoundError
	var re *keepclient.ReadError
	if errors.As(err, &nf) || !errors.As(err, &re) || !re.Temporary() || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Get: %v", err)
	}
}

func TestGetRetriesAndKeepsRequestID(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	data := []byte("retry me")
	loc := locator.New(data)
	c.Server(0).Store(data)
	c.Server(0).ScriptGet(keeptest.Response{Status: 500}, keeptest.Response{Status: 503})
	kc := newClient(t, c)
	got, err := kc.Get(context.Background(), loc, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	reqs := c.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	id := reqs[0].Header.Get("X-Request-Id")
	for _, r := range reqs {
		if r.Header.Get("X-Request-Id") != id || id == "" {
			t.Errorf("request ids differ: %q vs %q", r.Header.Get("X-Request-Id"), id)
		}
	}
}

func TestGetCorruptTriesNext(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data := []byte("corruptible")
	loc := locator.New(data)
	order := c.ProbeOrder(loc.Hash)
	order[0].Store(data)
	order[0].SetCorrupt(true)
	order[1].Store(data)
	kc := newClient(t, c)
	got, err := kc.Get(context.Background(), loc, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	// Corrupt everywhere: a clear checksum error.
	order[1].SetCorrupt(true)
	_, err = kc.Get(context.Background(), loc, nil)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("Get of corrupt block: %v", err)
	}
}

func TestGetHintedServiceFirst(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data := []byte("hinted")
	loc := locator.New(data)
	order := c.ProbeOrder(loc.Hash)
	last := order[2]
	last.SetType("gateway:test")
	last.Store(data)
	order[0].Store(data)
	kc := newClient(t, c)
	hinted := loc
	hinted.Hints = []string{"K@" + last.UUID()}
	if _, err := kc.Get(context.Background(), hinted, nil); err != nil {
		t.Fatal(err)
	}
	if got := getTargets(c); len(got) != 1 || got[0] != last.UUID() {
		t.Errorf("asked %v, want only the hinted %s", got, last.UUID())
	}
	// Without the hint, the gateway is not used at all.
	last.SetCorrupt(true)
	if _, err := kc.Get(context.Background(), loc, nil); err != nil {
		t.Fatal(err)
	}
}

func TestGetEmptyBlockNoRequest(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	kc := newClient(t, c)
	loc, _ := locator.Parse(locator.EmptyHash + "+0")
	if got, err := kc.Get(context.Background(), loc, nil); err != nil || len(got) != 0 {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if len(c.Requests()) != 0 {
		t.Error("request sent for the empty block")
	}
}

func TestHead(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	data := []byte("head me")
	loc := locator.New(data)
	c.ProbeOrder(loc.Hash)[1].Store(data)
	kc := newClient(t, c)
	n, err := kc.Head(context.Background(), loc)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Head = %d, %v", n, err)
	}
}

func TestGetStall(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	data := bytes.Repeat([]byte("s"), 100000)
	loc := locator.New(data)
	order := c.ProbeOrder(loc.Hash)
	order[0].Store(data)
	order[0].ScriptGet(keeptest.Response{Stall: true})
	order[1].Store(data)
	// Long enough that the healthy server never trips it on a loaded
	// machine; the stalled one always does.
	kc := newClient(t, c, func(o *keepclient.Options) { o.StallTimeout = 2 * time.Second })
	got, err := kc.Get(context.Background(), loc, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %v", err)
	}
}

func TestGetReusesBuffer(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	data := []byte("buffered")
	loc := locator.New(data)
	c.Server(0).Store(data)
	kc := newClient(t, c)
	buf := make([]byte, 0, 64)
	got, err := kc.Get(context.Background(), loc, buf)
	if err != nil || &got[0] != &buf[:1][0] {
		t.Fatalf("Get did not use the caller's buffer: %v", err)
	}
}

// A HEAD answer claiming more than a block can hold is refused, and the
// read moves on.
func TestHeadRefusesOversizeAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(locator.MaxBlockSize+1))
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	kc, err := keepclient.New(keepclient.Options{
		Services:  []keepclient.Service{diskService(srv, "zzzzz-bi6l4-bigheadbigheadb")},
		MaxPasses: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	loc := locator.Locator{Hash: "acbd18db4cc2f85cedef654fccc4a4d8", Size: -1}
	n, err := kc.Head(context.Background(), loc)
	if err == nil || !strings.Contains(err.Error(), "more than a block can hold") {
		t.Fatalf("Head = %d, %v", n, err)
	}
}

// A +K@cluster hint reads from that cluster's configured service first,
// with the token salted for it; a token that cannot be salted is never
// sent there, and the read falls back to the local services.
func TestGetRemoteCluster(t *testing.T) {
	local := keeptest.NewCluster(t, 2)
	remote := keeptest.NewCluster(t, 1)
	data := []byte("federated block")
	loc := locator.New(data)
	remote.Server(0).Store(data)
	local.ProbeOrder(loc.Hash)[1].Store(data)
	hinted := loc
	hinted.Hints = []string{"K@xxxxx"}
	const token = "v2/zzzzz-gj3su-077z32aux8dg2s1/3kg6k6lzmp9kj5cpkcoxie963cmvjahbt2fod9zru30k1jqdmi"
	for _, tt := range []struct {
		token        string
		remoteAsked  bool
		localAsked   int
		remoteBearer string // prefix of what the remote saw
	}{
		{token, true, 0, "Bearer v2/zzzzz-gj3su-077z32aux8dg2s1/"},
		{"v1plaintoken", false, 2, ""},
	} {
		kc := newClient(t, local, func(o *keepclient.Options) {
			o.Token = tt.token
			o.RemoteClusters = map[string]keepclient.Service{"xxxxx": remote.Server(0).Service()}
		})
		before, beforeLocal := len(remote.Requests()), len(local.Requests())
		got, err := kc.Get(context.Background(), hinted, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("token %q: Get: %v", tt.token, err)
		}
		reqs := remote.Requests()[before:]
		if asked := len(reqs) > 0; asked != tt.remoteAsked {
			t.Fatalf("token %q: remote asked %v, want %v", tt.token, asked, tt.remoteAsked)
		}
		if n := len(local.Requests()) - beforeLocal; n != tt.localAsked {
			t.Errorf("token %q: %d local requests, want %d", tt.token, n, tt.localAsked)
		}
		for _, r := range reqs {
			auth := r.Header.Get("Authorization")
			if !strings.HasPrefix(auth, tt.remoteBearer) || strings.Contains(auth, "3kg6k6lzmp9kj5cpkcoxie963cmvjahbt2fod9zru30k1jqdmi") {
				t.Errorf("remote cluster saw %q: the secret, or not the salted token", auth)
			}
		}
	}
}
