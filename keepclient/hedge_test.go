package keepclient_test

import (
	"context"

	"fmt"
	"net"
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

// Hedges do not chain: while a hedge runs, a lagging hedge gets no hedge
// of its own, so at most one upload beyond what is needed is in flight.
func TestPutHedgesDoNotChain(t *testing.T) {
	c := keeptest.NewCluster(t, 5)
	data, hash := block(strings.Repeat("chain", 20000))
	order := c.ProbeOrder(hash)
	for _, s := range order[1:4] {
		s.SetDefault(keeptest.Response{Stall: true})
	}
	const stall = time.Second
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.HedgeMin = 30 * time.Millisecond
		o.StallTimeout = stall
		o.ExpectContinueTimeout = 10 * time.Second
	})
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil || res.Replicas != 2 {
		t.Fatalf("Put: %v", err)
	}
	// Until the first stalled uploads time out, only the two first
	// uploads and one hedge may have started. (The window is half the
	// stall timeout, so that a loaded machine cannot blur the two.)
	reqs := c.PutRequests()
	early := 0
	for _, r := range reqs {
		if r.Time.Sub(reqs[0].Time) < stall/2 {
			early++
		}
	}
	if early > 3 {
		t.Errorf("%d uploads started within the first %v: %v", early, stall/2, putTargets(c))
	}
}

// Time spent waiting for one of the client's request slots is not lag:
// equally fast servers are never hedged.
func TestPutQueuedUploadIsNotALaggard(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data, _ := block("slot wait")
	for _, s := range c.Servers() {
		s.SetDefault(keeptest.Response{Delay: 150 * time.Millisecond})
	}
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.MaxRequests = 1
		o.HedgeMin = 10 * time.Millisecond
		o.ExpectContinueTimeout = 10 * time.Second
	})
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Hedges != 0 {
		t.Errorf("equally fast servers, Hedges = %d (attempts %+v)", res.Hedges, res.Attempts)
	}
}

// With a non-disk service present, uploads stay one at a time: no hedge.
func TestPutNoHedgeInProxyMode(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data, hash := block(strings.Repeat("proxyhedge", 10000))
	order := c.ProbeOrder(hash)
	for _, s := range order {
		s.SetType("proxy")
	}
	order[0].SetReplicas(1)
	order[1].Script(keeptest.Response{Delay: 2 * time.Second})
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.HedgeMin = 30 * time.Millisecond
		o.ExpectContinueTimeout = 10 * time.Second
	})
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	reqs := c.PutRequests()
	for i := 1; i < len(reqs); i++ {
		if reqs[i-1].Done.IsZero() || reqs[i].Time.Before(reqs[i-1].Done) {
			t.Errorf("proxy mode: PUT %d to %s started before PUT %d to %s finished (hedges %d)", i, reqs[i].Server, i-1, reqs[i-1].Server, res.Hedges)
		}
	}
}

// A service that lagged once is tried first again after DownHold, even
// when writes keep using it meanwhile.
func TestPutSlowMarkExpires(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.HedgeMin = 20 * time.Millisecond
		o.DownHold = 300 * time.Millisecond
		o.StallTimeout = 300 * time.Millisecond
		o.ExpectContinueTimeout = 10 * time.Second
	})
	data, hash := block(strings.Repeat("slow once", 1000))
	s := c.ProbeOrder(hash)[0]
	s.Script(keeptest.Response{Stall: true}) // slow exactly once
	if _, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	// S is healthy from now on. Keep writing 3 replicas (S is needed) for
	// four times DownHold.
	deadline := time.Now().Add(1200 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		if _, err := kc.Put(context.Background(), []byte(fmt.Sprint("busy ", i)), keepclient.PutOptions{Replicas: 3}); err != nil {
			t.Fatal(err)
		}
	}
	var next []byte
	for i := 0; next == nil; i++ {
		d, h := block(fmt.Sprint("probe ", i))
		if c.ProbeOrder(h)[0] == s {
			next = d
		}
	}
	res, err := kc.Put(context.Background(), next, keepclient.PutOptions{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts[0].Service.UUID != s.UUID() {
		t.Errorf("%s lagged once, 1.2s ago (DownHold 300ms), is still demoted: attempts %+v", s.UUID(), res.Attempts)
	}
}

// A permission signature is a capability: errors never show it.
func TestPutErrorHasNoSignature(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	c.SetSigner(locator.Signer{Key: []byte("secret")})
	data, hash := block("signed leak")
	order := c.ProbeOrder(hash)
	order[1].SetDefault(keeptest.Response{Stall: true})
	kc := newClient(t, c, func(o *keepclient.Options) { o.NoHedge = true })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := kc.Put(ctx, data, keepclient.PutOptions{Replicas: 2})
	if err != nil && strings.Contains(err.Error(), "+A") {
		t.Errorf("error leaks the permission signature: %v", err)
	}
}

// The transport may answer before it has finished reading the body; Put
// still returns only once nothing reads the caller's buffer any more, so
// the caller may reuse it at once (the race detector checks this).
func TestPutNeverReadsBufferAfterReturn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 1)
		r.Body.Read(b) // triggers 100 Continue
		w.WriteHeader(500)
	}))
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	svc := keepclient.Service{UUID: "zzzzz-bi6l4-000000000000001", Host: host, Port: p, Type: keepclient.TypeDisk}
	kc, _ := keepclient.New(keepclient.Options{Services: []keepclient.Service{svc}, Replicas: 1, MaxPasses: 1})
	t.Cleanup(kc.Close)
	data := make([]byte, 8<<20)
	for i := 0; i < 40; i++ {
		kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 1})
		for j := range data { // caller reuses its buffer
			data[j] = byte(i)
		}
	}
}
