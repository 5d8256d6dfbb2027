package keepclient_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// putMany writes blocks with default options, a few at a time, and
// checks that every block ends with exactly n holders and n replicas
// reported. It returns the results.
func putMany(t *testing.T, c *keeptest.Cluster, kc *keepclient.Client, blocks [][]byte, n int) []*keepclient.PutResult {
	t.Helper()
	results := make([]*keepclient.PutResult, len(blocks))
	errs := make([]error, len(blocks))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, data := range blocks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], errs[i] = kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: n})
		}()
	}
	wg.Wait()
	for i, data := range blocks {
		hash := locator.New(data).Hash
		if errs[i] != nil {
			t.Errorf("block %d: %v", i, errs[i])
			continue
		}
		if h := c.Holders(hash); len(h) != n || results[i].Replicas != n {
			t.Errorf("block %d: %d holders %v, %d replicas reported, want exactly %d (attempts %+v)", i, len(h), uuidsOf(h), results[i].Replicas, n, results[i].Attempts)
		}
	}
	return results
}

// defaultClient returns a client for the cluster with default options.
func defaultClient(t *testing.T, c *keeptest.Cluster) *keepclient.Client {
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

func blocks(prefix string, n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("%s %d %s", prefix, i, strings.Repeat("x", size)))
	}
	return out
}

// One server slow to send "100 Continue": every block still gets exactly
// N copies, with default options, and writes do not wait for the slow
// server.
func TestPutExactlyNPastServerSlowToAccept(t *testing.T) {
	c := keeptest.NewCluster(t, 5)
	slow := c.Server(0)
	slow.SetDefault(keeptest.Response{Delay: 600 * time.Millisecond})
	kc := defaultClient(t, c)
	res := putMany(t, c, kc, blocks("slow to accept", 200, 1000), 2)
	slowReplaced, others := 0, 0
	for _, r := range res {
		for _, a := range r.Attempts {
			switch {
			case a.Replaced && a.Service.UUID == slow.UUID():
				slowReplaced++
			case a.Replaced:
				others++ // a loaded machine can make a healthy server lag too
			}
		}
		if n := countReplaced(r); n != r.Replaced {
			t.Errorf("PutResult.Replaced %d, %d attempts marked replaced", r.Replaced, n)
		}
	}
	t.Logf("%d uploads to the slow server replaced, %d to others", slowReplaced, others)
	if slowReplaced == 0 {
		t.Error("no upload to the slow server was replaced")
	}
}

func countReplaced(r *keepclient.PutResult) int {
	n := 0
	for _, a := range r.Attempts {
		if a.Replaced {
			n++
		}
	}
	return n
}

// Five servers answering after random delays of 0-500 ms: exactly N
// copies of every block, with default options.
func TestPutExactlyNWithRandomDelays(t *testing.T) {
	c := keeptest.NewCluster(t, 5)
	rng := rand.New(rand.NewPCG(1, 2))
	var script [5][]keeptest.Response
	for i := range script {
		for range 200 {
			script[i] = append(script[i], keeptest.Response{Delay: time.Duration(rng.IntN(500)) * time.Millisecond})
		}
		c.Server(i).Script(script[i]...)
	}
	kc := defaultClient(t, c)
	putMany(t, c, kc, blocks("random delays", 200, 1000), 2)
}

// A lagging upload is replaced by the next service in probe order; the
// slow service is then tried after the others by later writes.
func TestPutReplacesLaggingUpload(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data, hash := block(strings.Repeat("replace", 20000))
	order := c.ProbeOrder(hash)
	order[1].Script(keeptest.Response{Stall: true})
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.LagMin = 50 * time.Millisecond
		o.StallTimeout = time.Minute
	})
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replaced != 1 || res.Replicas != 2 {
		t.Errorf("replaced %d, replicas %d", res.Replaced, res.Replicas)
	}
	if got := uuidsOf(c.Holders(hash)); !sameSet(got, uuidsOf([]*keeptest.Server{order[0], order[2]})) {
		t.Errorf("holders %v", got)
	}
	if order[3].PutCount() != 0 {
		t.Error("more than one replacement")
	}
	var marked bool
	for _, a := range res.Attempts {
		if a.Service.UUID == order[1].UUID() {
			marked = a.Replaced && strings.Contains(a.Message, "lagging")
		}
	}
	if !marked {
		t.Errorf("attempt on the slow server not marked replaced: %+v", res.Attempts)
	}
	var next []byte
	for i := 0; ; i++ {
		d, h := block(fmt.Sprint("after replacing ", i))
		if o := c.ProbeOrder(h); o[0] == order[1] {
			next = d
			break
		}
	}
	res, err = kc.Put(context.Background(), next, keepclient.PutOptions{Replicas: 2})
	if err != nil || res.Replaced != 0 {
		t.Fatalf("next Put: %v, %d replaced", err, res.Replaced)
	}
	for _, a := range res.Attempts {
		if a.Service.UUID == order[1].UUID() {
			t.Error("the slow server was tried first again")
		}
	}
}

// bodyThenWait is a block server that reads each upload's whole body
// and then waits before answering, as a server committing a block to a
// slow disk does. It counts the blocks it stored.
type bodyThenWait struct {
	srv    *httptest.Server
	wait   time.Duration
	mu     sync.Mutex
	stored int
}

func newBodyThenWait(t *testing.T, uuid string, wait time.Duration) (*bodyThenWait, keepclient.Service) {
	b := &bodyThenWait{wait: wait}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		l := locator.New(data)
		if "/"+l.Hash != r.URL.Path {
			http.Error(w, "hash mismatch", http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.stored++
		b.mu.Unlock()
		time.Sleep(b.wait) // committing; the block counts as stored
		fmt.Fprintln(w, l)
	}))
	t.Cleanup(b.srv.Close)
	return b, diskService(b.srv, uuid)
}

// An upload that has sent its whole body is never abandoned for lag,
// however long the server takes to answer: it may be committing.
func TestPutNeverReplacesAfterWholeBody(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	slow, svc := newBodyThenWait(t, "zzzzz-bi6l4-slowcommit00000", 400*time.Millisecond)
	svcs := append(c.Services(), svc)
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.Services = svcs
		o.LagMin = 20 * time.Millisecond
	})
	var data []byte
	for i := 0; data == nil; i++ {
		d, h := block(fmt.Sprint("whole body ", i, strings.Repeat("y", 1000)))
		if keepclient.ProbeOrder(h, svcs)[0].UUID == svc.UUID {
			data = d
		}
	}
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replaced != 0 || res.Replicas != 2 || slow.stored != 1 || len(c.Holders(locator.New(data).Hash)) != 1 {
		t.Errorf("replaced %d, replicas %d, slow server stored %d, others %d: %+v", res.Replaced, res.Replicas, slow.stored, len(c.Holders(locator.New(data).Hash)), res.Attempts)
	}
}

// Time spent waiting for one of the client's request slots is not lag:
// equally fast servers are never replaced.
func TestPutQueuedUploadIsNotALaggard(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data, _ := block("slot wait")
	for _, s := range c.Servers() {
		s.SetDefault(keeptest.Response{Delay: 150 * time.Millisecond})
	}
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.MaxRequests = 1
		o.LagMin = 10 * time.Millisecond
	})
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replaced != 0 {
		t.Errorf("equally fast servers, Replaced = %d (attempts %+v)", res.Replaced, res.Attempts)
	}
}

// With a non-disk service present, uploads stay one at a time, even when
// one is replaced: only an upload that can no longer store anything may
// still be winding down when the next starts.
func TestPutProxyModeOneAtATime(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data, hash := block(strings.Repeat("proxy replace", 10000))
	order := c.ProbeOrder(hash)
	for _, s := range order {
		s.SetType("proxy")
	}
	order[0].SetReplicas(1)
	order[1].Script(keeptest.Response{Delay: 2 * time.Second})
	kc := newClient(t, c, func(o *keepclient.Options) { o.LagMin = 30 * time.Millisecond })
	// The first upload's time teaches the write what "fast" is.
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil || res.Replicas != 2 {
		t.Fatalf("Put: %v", err)
	}
	reqs := c.PutRequests()
	for i := 1; i < len(reqs); i++ {
		prev := reqs[i-1]
		if prev.BodyRead == int64(len(data)) && (prev.Done.IsZero() || reqs[i].Time.Before(prev.Done)) {
			t.Errorf("proxy mode: PUT %d to %s started before PUT %d to %s, which had the whole block, finished", i, reqs[i].Server, i-1, prev.Server)
		}
	}
	if res.Replaced != 1 {
		t.Errorf("replaced %d, want 1 (attempts %+v)", res.Replaced, res.Attempts)
	}
}

// A service another write found slow is replaced at once, even by a
// write that has nothing of its own to compare with.
func TestPutReplacesWhenAnotherWriteFoundServerSlow(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.LagMin = 20 * time.Millisecond
		o.StallTimeout = time.Minute
	})
	// Write B, one replica, starts first on the server that will stall
	// every upload; with no other upload of its block to compare with,
	// it cannot tell the server is slow by itself.
	var dataB, dataA []byte
	var slow *keeptest.Server
	for i := 0; dataB == nil; i++ {
		d, h := block(fmt.Sprint("B ", i))
		dataB, slow = d, c.ProbeOrder(h)[0]
	}
	for i := 0; dataA == nil; i++ {
		d, h := block(fmt.Sprint("A ", i))
		if c.ProbeOrder(h)[1] == slow {
			dataA = d
		}
	}
	slow.SetDefault(keeptest.Response{Stall: true})
	errc := make(chan error, 1)
	var resB *keepclient.PutResult
	go func() {
		var err error
		resB, err = kc.Put(context.Background(), dataB, keepclient.PutOptions{Replicas: 1})
		errc <- err
	}()
	if err := slow.WaitStalled(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// Write A has a fast sibling, replaces the stalled upload and marks
	// the server slow; write B then replaces its upload too.
	resA, err := kc.Put(context.Background(), dataA, keepclient.PutOptions{Replicas: 2})
	if err != nil || resA.Replaced != 1 {
		t.Fatalf("write A: %v, %d replaced", err, resA.Replaced)
	}
	if err := <-errc; err != nil || resB.Replaced != 1 || resB.Replicas != 1 {
		t.Fatalf("write B: %v, %+v", err, resB)
	}
}

// Progress adds up to the block's size as its bytes go out, not only at
// the end.
func TestPutProgress(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := defaultClient(t, c)
	data := make([]byte, 8<<20)
	var mu sync.Mutex
	var calls []int
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2, Progress: func(n int) {
		mu.Lock()
		calls = append(calls, n)
		mu.Unlock()
	}})
	if err != nil || res.Replicas != 2 {
		t.Fatal(err)
	}
	total := 0
	for _, n := range calls {
		if n <= 0 {
			t.Errorf("progress call with %d", n)
		}
		total += n
	}
	if total != len(data) || len(calls) < 4 {
		t.Errorf("%d progress calls adding up to %d, want several adding up to %d", len(calls), total, len(data))
	}
}
