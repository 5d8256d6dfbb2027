package keepclient_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// newClient returns a client for the cluster with fast retries.
func newClient(t *testing.T, c *keeptest.Cluster, mod ...func(*keepclient.Options)) *keepclient.Client {
	t.Helper()
	opts := keepclient.Options{
		Services:     c.Services(),
		Token:        "tok",
		Replicas:     2,
		RetryDelay:   time.Millisecond,
		StallTimeout: 5 * time.Second,
	}
	for _, m := range mod {
		m(&opts)
	}
	kc, err := keepclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

func block(s string) ([]byte, string) {
	data := []byte(s)
	sum := md5.Sum(data)
	return data, hex.EncodeToString(sum[:])
}

// putTargets returns the uuids of the servers that received each PUT, in
// arrival order.
func putTargets(c *keeptest.Cluster) []string {
	var out []string
	for _, r := range c.PutRequests() {
		out = append(out, r.Server)
	}
	return out
}

func uuidsOf(ss []*keeptest.Server) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.UUID())
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]int)
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestPutHealthy(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint("N=", n), func(t *testing.T) {
			c := keeptest.NewCluster(t, 5)
			kc := newClient(t, c)
			data, hash := block("healthy")
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: n})
			if err != nil {
				t.Fatal(err)
			}
			if res.Replicas != n || res.Locator.Hash != hash || res.Locator.Size != int64(len(data)) {
				t.Errorf("result %+v", res)
			}
			want := uuidsOf(c.ProbeOrder(hash)[:n])
			if got := putTargets(c); !sameSet(got, want) {
				t.Errorf("PUTs went to %v, want exactly %v", got, want)
			}
			if got := uuidsOf(c.Holders(hash)); !sameSet(got, want) {
				t.Errorf("holders %v, want %v", got, want)
			}
		})
	}
}

func TestPutHeaders(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := newClient(t, c)
	data, _ := block("headers")
	if _, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2, RequestID: "req-abc"}); err != nil {
		t.Fatal(err)
	}
	reqs := c.PutRequests()
	if len(reqs) != 2 {
		t.Fatalf("%d PUTs", len(reqs))
	}
	for _, r := range reqs {
		h := r.Header
		if h.Get("Expect") != "100-continue" || h.Get("Authorization") != "Bearer tok" ||
			h.Get("X-Request-Id") != "req-abc" || h.Get("X-Keep-Desired-Replicas") != "2" {
			// Every upload tells the server the whole N wanted, as the
			// Arvados clients do.
			t.Errorf("headers %v", h)
		}
	}
}

// In proxy mode too, every upload sends the whole N: a proxy writes that
// many in all, and its answer counts for what is still missing.
func TestPutDesiredReplicasIsTheWholeN(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data, hash := block("desired")
	order := c.ProbeOrder(hash)
	for _, s := range order {
		s.SetType("proxy")
	}
	order[0].SetReplicas(2)
	kc := newClient(t, c)
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	reqs := c.PutRequests()
	if len(reqs) != 2 || reqs[0].Header.Get("X-Keep-Desired-Replicas") != "3" || reqs[1].Header.Get("X-Keep-Desired-Replicas") != "3" {
		for _, r := range reqs {
			t.Logf("%s desired %s", r.Server, r.Header.Get("X-Keep-Desired-Replicas"))
		}
		t.Error("want desired replicas 3 then 3")
	}
	if res.Replicas != 3 || res.Attempts[0].Replicas != 2 || res.Attempts[1].Replicas != 1 {
		t.Errorf("replicas %d, attempts %+v; want 3, counted 2 then 1", res.Replicas, res.Attempts)
	}
}

func TestPutOneFails(t *testing.T) {
	c := keeptest.NewCluster(t, 5)
	data, hash := block("one fails")
	order := c.ProbeOrder(hash)
	order[1].Script(keeptest.Response{Status: 500, Body: "boom"})
	kc := newClient(t, c)
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replicas != 3 {
		t.Errorf("replicas %d", res.Replicas)
	}
	// The next service in probe order takes the failed one's place, and
	// the failed one is not retried: it is no longer needed.
	if got, want := uuidsOf(c.Holders(hash)), uuidsOf([]*keeptest.Server{order[0], order[2], order[3]}); !sameSet(got, want) {
		t.Errorf("holders %v, want %v", got, want)
	}
	if n := order[1].PutCount(); n != 1 {
		t.Errorf("failed server got %d PUTs, want 1", n)
	}
	if n := order[4].PutCount(); n != 0 {
		t.Errorf("last server got %d PUTs", n)
	}
	// The replacement starts only after the failure.
	failed, replacement := order[1].Requests()[0], order[3].Requests()[0]
	if replacement.Time.Before(failed.Done) {
		t.Errorf("replacement upload started at %v, before the failure answered at %v", replacement.Time, failed.Done)
	}
}

func TestPutFailedServerRetriedWhenStillNeeded(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data, hash := block("retry needed")
	order := c.ProbeOrder(hash)
	order[0].Script(keeptest.Response{Status: 500})
	kc := newClient(t, c)
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replicas != 3 || order[0].PutCount() != 2 || order[1].PutCount() != 1 || order[2].PutCount() != 1 {
		t.Errorf("replicas %d, PUT counts %d %d %d", res.Replicas, order[0].PutCount(), order[1].PutCount(), order[2].PutCount())
	}
}

func TestPutSecondPassStoresOnlyMissing(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data, hash := block("second pass")
	order := c.ProbeOrder(hash)
	order[2].Script(keeptest.Response{Status: 502})
	kc := newClient(t, c)
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	var pass2 []keepclient.Attempt
	for _, a := range res.Attempts {
		if a.Pass == 2 {
			pass2 = append(pass2, a)
		}
	}
	if len(pass2) != 1 || pass2[0].Service.UUID != order[2].UUID() || pass2[0].Status != 200 {
		t.Errorf("pass 2 attempts %+v, want one successful upload to %s", pass2, order[2].UUID())
	}
	if got := c.PutRequests(); len(got) != 4 || got[3].Header.Get("X-Keep-Desired-Replicas") != "3" {
		t.Errorf("%d PUTs; last wants %s", len(got), got[len(got)-1].Header.Get("X-Keep-Desired-Replicas"))
	}
}

func TestPutStatusRetryRules(t *testing.T) {
	tests := []struct {
		name    string
		resp    keeptest.Response
		retried bool
	}{
		{"500", keeptest.Response{Status: 500}, true},
		{"502", keeptest.Response{Status: 502}, true},
		{"504", keeptest.Response{Status: 504}, true},
		{"408", keeptest.Response{Status: 408}, true},
		{"429", keeptest.Response{Status: 429}, true},
		{"503 full", keeptest.Response{Status: 503}, false},
		{"507 full", keeptest.Response{Status: 507}, false},
		{"503 busy", keeptest.Response{Status: 503, Header: http.Header{"Retry-After": {"0"}}}, true},
		{"400", keeptest.Response{Status: 400}, false},
		{"401", keeptest.Response{Status: 401}, false},
		{"403", keeptest.Response{Status: 403}, false},
		{"413", keeptest.Response{Status: 413}, false},
		{"reset", keeptest.Response{Reset: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := keeptest.NewCluster(t, 2)
			data, hash := block("rules " + tt.name)
			order := c.ProbeOrder(hash)
			order[0].Script(tt.resp)
			kc := newClient(t, c)
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
			wantPuts := 1
			if tt.retried {
				wantPuts = 2
			}
			if got := order[0].PutCount(); got != wantPuts {
				t.Errorf("server got %d PUTs, want %d", got, wantPuts)
			}
			if tt.retried {
				if err != nil || res.Replicas != 2 {
					t.Errorf("Put: %v (replicas %d)", err, res.Replicas)
				}
				return
			}
			var ire *keepclient.InsufficientReplicasError
			if !errors.As(err, &ire) || ire.Stored != 1 || ire.Wanted != 2 {
				t.Fatalf("Put error %v, want InsufficientReplicasError 1 of 2", err)
			}
		})
	}
}

func TestPutRetryAfterIsHonoured(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	data, _ := block("retry after")
	c.Server(0).Script(keeptest.Response{Status: 503, Header: http.Header{"Retry-After": {"1"}}})
	kc := newClient(t, c)
	if _, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	reqs := c.PutRequests()
	if len(reqs) != 2 {
		t.Fatalf("%d PUTs", len(reqs))
	}
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < time.Second {
		t.Errorf("retried after %v, before the 1s Retry-After", gap)
	}
}

func TestPutAllFail(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data, hash := block("all fail")
	order := c.ProbeOrder(hash)
	order[0].SetDefault(keeptest.Response{Status: 500, Body: "disk on fire"})
	order[1].SetFull(true)
	order[2].SetDefault(keeptest.Response{Status: 403, Body: "go away"})
	order[3].Kill()
	kc := newClient(t, c, func(o *keepclient.Options) { o.MaxPasses = 3 })
	_, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) {
		t.Fatalf("error %v", err)
	}
	if ire.Stored != 0 || ire.Wanted != 2 || ire.Passes != 3 || len(ire.Services) != 4 {
		t.Fatalf("error %+v", ire)
	}
	want := []struct {
		status    int
		msg       string
		retryable bool
	}{{500, "disk on fire", true}, {507, "", false}, {403, "go away", false}, {0, "refused", true}}
	for i, w := range want {
		r := ire.Services[i]
		if r.Service.UUID != order[i].UUID() || r.Status != w.status || !strings.Contains(r.Message, w.msg) || r.Retryable != w.retryable {
			t.Errorf("service %d: %+v, want %+v", i, r, w)
		}
	}
	for _, s := range []string{"stored 0 of 2", "3 passes", "disk on fire", "507", "refused", order[2].UUID()} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message %q lacks %q", err, s)
		}
	}
	// Retryable failures were tried on every pass, the others once.
	if order[0].PutCount() != 3 || order[1].PutCount() != 1 || order[2].PutCount() != 1 {
		t.Errorf("PUT counts %d %d %d", order[0].PutCount(), order[1].PutCount(), order[2].PutCount())
	}
}

func TestPutProxy(t *testing.T) {
	tests := []struct {
		name     string
		reported int
		wantPuts int
	}{
		{"proxy stores 2 of 3", 2, 2},
		{"proxy stores 3", 3, 1},
		{"proxy stores 4", 4, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := keeptest.NewCluster(t, 3)
			data, hash := block("proxy " + tt.name)
			order := c.ProbeOrder(hash)
			order[0].SetType("proxy")
			order[0].SetReplicas(tt.reported)
			kc := newClient(t, c)
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
			if err != nil {
				t.Fatal(err)
			}
			got := putTargets(c)
			want := uuidsOf(order[:tt.wantPuts])
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("PUTs to %v, want %v", got, want)
			}
			// Never more than the 3 asked for, however many the proxy says.
			if res.Replicas != 3 {
				t.Errorf("replicas %d", res.Replicas)
			}
		})
	}
}

func TestPutProxyOneAtATime(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data, hash := block("one at a time")
	order := c.ProbeOrder(hash)
	order[3].SetType("proxy")
	for _, s := range order[:2] {
		s.Script(keeptest.Response{Status: 500, Delay: 20 * time.Millisecond})
	}
	kc := newClient(t, c)
	if _, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	// With a non-disk service present, uploads go one at a time, in
	// probe order: no request starts before the previous one answered.
	reqs := c.PutRequests()
	if got, want := putTargets(c), uuidsOf(order); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PUTs to %v, want %v", got, want)
	}
	for i := 1; i < len(reqs); i++ {
		if reqs[i].Time.Before(reqs[i-1].Done) {
			t.Errorf("PUT %d started before PUT %d finished", i, i-1)
		}
	}
}

func TestPutReadOnlyUntouched(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data, hash := block("read only")
	order := c.ProbeOrder(hash)
	order[0].SetReadOnly(true)
	order[2].SetReadOnly(true)
	kc := newClient(t, c)
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) || ire.Stored != 2 || ire.Writable != 2 {
		t.Fatalf("Put: %v", err)
	}
	if res.Replicas != 2 || order[0].PutCount() != 0 || order[2].PutCount() != 0 {
		t.Errorf("read-only servers got PUTs: %d %d", order[0].PutCount(), order[2].PutCount())
	}
}

func TestPutNoWritableServices(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	for _, s := range c.Servers() {
		s.SetReadOnly(true)
	}
	kc := newClient(t, c)
	data, _ := block("nowhere")
	_, err := kc.Put(context.Background(), data, keepclient.PutOptions{})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) || !strings.Contains(err.Error(), "no writable keep services") {
		t.Fatalf("Put: %v", err)
	}
	if len(c.Requests()) != 0 {
		t.Error("requests were sent")
	}
}

func TestPutReplicasHeader(t *testing.T) {
	tests := []struct {
		name  string
		set   func(*keeptest.Server)
		want  int
		warns string // in the log, "" for none
	}{
		{"absent counts 1", func(s *keeptest.Server) { s.SetReplicas(-1) }, 1, ""},
		{"malformed counts 1", func(s *keeptest.Server) { s.SetReplicasHeader("lots") }, 1, "malformed X-Keep-Replicas-Stored"},
		{"negative counts 1", func(s *keeptest.Server) { s.SetReplicasHeader("-3") }, 1, "malformed X-Keep-Replicas-Stored"},
		{"huge counts 1", func(s *keeptest.Server) { s.SetReplicasHeader("9223372036854775807") }, 1, "malformed X-Keep-Replicas-Stored"},
		{"2 count the 1 wanted", func(s *keeptest.Server) { s.SetReplicas(2) }, 1, ""},
		{"0 counts 0", func(s *keeptest.Server) { s.SetReplicas(0) }, 1, ""}, // and the next server is written
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := keeptest.NewCluster(t, 3)
			data, hash := block("replicas " + tt.name)
			order := c.ProbeOrder(hash)
			tt.set(order[0])
			var logs bytes.Buffer
			kc := newClient(t, c, func(o *keepclient.Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Replicas != tt.want {
				t.Errorf("replicas %d, want %d", res.Replicas, tt.want)
			}
			if tt.warns == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tt.warns) {
				t.Errorf("log %q, want %q", logs.String(), tt.warns)
			}
			if tt.warns != "" && !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("log %q not at warn level", logs.String())
			}
		})
	}
}

// Answers claiming absurd counts never make a write succeed short, or
// report a negative or excessive count.
func TestPutAbsurdCountsAreBounded(t *testing.T) {
	tests := []struct {
		name string
		set  func(*keeptest.Server)
	}{
		{"replicas", func(s *keeptest.Server) { s.SetReplicasHeader("9223372036854775807") }},
		{"classes", func(s *keeptest.Server) { s.SetClassesHeader("default=1, default=9223372036854775807") }},
		{"huge class count", func(s *keeptest.Server) { s.SetClassesHeader("default=65536") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := keeptest.NewCluster(t, 3)
			data, hash := block("absurd " + tt.name)
			order := c.ProbeOrder(hash)
			tt.set(order[0])
			tt.set(order[1])
			kc := newClient(t, c)
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3, StorageClasses: []string{"default"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Replicas != 3 || len(c.Holders(hash)) != 3 {
				t.Errorf("replicas %d, holders %d; want 3 and 3", res.Replicas, len(c.Holders(hash)))
			}
			for class, n := range res.Classes {
				if n < 0 || n > 3 {
					t.Errorf("class %s counted %d", class, n)
				}
			}
		})
	}
}

func TestPutStorageClasses(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data, hash := block("classes")
	order := c.ProbeOrder(hash)
	order[0].SetClasses("hot")
	order[1].SetClasses("cold")
	order[2].SetClasses("hot", "cold")
	order[3].SetClasses("hot", "cold")
	kc := newClient(t, c)
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2, StorageClasses: []string{"hot", "cold"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Classes["hot"] < 2 || res.Classes["cold"] < 2 {
		t.Errorf("classes %v", res.Classes)
	}
	for _, r := range c.PutRequests() {
		if r.Header.Get("X-Keep-Storage-Classes") == "" {
			t.Errorf("PUT to %s without X-Keep-Storage-Classes", r.Server)
		}
	}
}

func TestPutClassesNotConfirmedFallsBackToReplicas(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	for _, s := range c.Servers() {
		s.OmitClasses()
	}
	data, _ := block("no class confirmation")
	kc := newClient(t, c)
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2, StorageClasses: []string{"archive"}})
	if err != nil || res.Replicas != 2 || len(c.PutRequests()) != 2 {
		t.Fatalf("Put: %v, replicas %d, %d PUTs", err, res.Replicas, len(c.PutRequests()))
	}
}

func TestPutStallTimeout(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data, hash := block(strings.Repeat("stall", 1000))
	order := c.ProbeOrder(hash)
	order[0].Script(keeptest.Response{Stall: true})
	kc := newClient(t, c, func(o *keepclient.Options) { o.StallTimeout = 200 * time.Millisecond })
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	var stalled bool
	for _, a := range res.Attempts {
		if a.Service.UUID == order[0].UUID() && a.Status == 0 && strings.Contains(a.Message, "stalled") {
			stalled = true
		}
	}
	if !stalled {
		t.Errorf("no stalled attempt in %+v", res.Attempts)
	}
	if res.Replicas != 2 {
		t.Errorf("replicas %d", res.Replicas)
	}
}

func TestPutContextCancel(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	for _, s := range c.Servers() {
		s.SetDefault(keeptest.Response{Stall: true})
	}
	kc := newClient(t, c)
	data, _ := block("cancel")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := kc.Put(ctx, data, keepclient.PutOptions{Replicas: 3})
		errc <- err
	}()
	// Cancel once all three uploads have reached their servers.
	for len(c.PutRequests()) < 3 {
		c.WaitRequests(context.Background(), 3)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Put after cancel: %v", err)
	}
	// Every upload the write started has ended: the servers see their
	// clients go away.
	if err := c.WaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestPutRefusalCostsNoBody(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	data := bytes.Repeat([]byte("refused "), 1<<17) // 1 MiB
	hash := locator.New(data).Hash
	order := c.ProbeOrder(hash)
	order[0].SetFull(true)
	order[1].Script(keeptest.Response{Status: 503})
	kc := newClient(t, c)
	if _, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	// With Expect: 100-continue, servers that refuse from the headers
	// alone never receive the body.
	for _, s := range order[:2] {
		for _, r := range s.Requests() {
			if r.BodyRead != 0 {
				t.Errorf("%s refused with %d but read %d body bytes", s.UUID(), r.Status, r.BodyRead)
			}
		}
	}
	if r := order[2].Requests(); len(r) != 1 || r[0].BodyRead != int64(len(data)) {
		t.Errorf("the accepting server read %+v", r)
	}
}

func TestPutDeadline(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	for _, s := range c.Servers() {
		s.SetDefault(keeptest.Response{Status: 500})
	}
	kc := newClient(t, c, func(o *keepclient.Options) { o.RetryDelay = time.Hour; o.MaxPasses = 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	data, _ := block("deadline")
	if _, err := kc.Put(ctx, data, keepclient.PutOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put: %v", err)
	}
}

func TestPutSizeLimits(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	kc := newClient(t, c)
	_, err := kc.Put(context.Background(), make([]byte, locator.MaxBlockSize+1), keepclient.PutOptions{})
	if !errors.Is(err, keepclient.ErrTooLarge) {
		t.Errorf("oversize Put: %v", err)
	}
	res, err := kc.Put(context.Background(), nil, keepclient.PutOptions{})
	if err != nil || res.Locator.String() != locator.EmptyHash+"+0" {
		t.Errorf("empty Put: %v %v", res, err)
	}
	if n := len(c.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestPutNeverOverReplicates(t *testing.T) {
	// Random delays and failures on 6 servers; whatever the interleaving,
	// no more than N copies may be stored.
	for trial := 0; trial < 10; trial++ {
		c := keeptest.NewCluster(t, 6)
		data, hash := block(fmt.Sprint("over-replication ", trial))
		for i, s := range c.Servers() {
			d := time.Duration((i*7+trial*3)%5) * 5 * time.Millisecond
			if (i+trial)%3 == 0 {
				s.Script(keeptest.Response{Status: 500, Delay: d})
			} else {
				s.Script(keeptest.Response{Delay: d})
			}
		}
		kc := newClient(t, c)
		res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(c.Holders(hash)); n != 3 || res.Replicas != 3 {
			t.Fatalf("trial %d: %d holders, %d replicas reported", trial, n, res.Replicas)
		}
	}
}

func TestPutSharedBufferHashOnce(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := newClient(t, c)
	data := bytes.Repeat([]byte("x"), 1<<20)
	sum := md5.Sum(data)
	hash := hex.EncodeToString(sum[:])
	// A caller-provided hash is used as is (servers verify it).
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3, Hash: hash})
	if err != nil || res.Replicas != 3 {
		t.Fatal(err)
	}
	for _, s := range c.Servers() {
		if got, _ := s.Block(hash); !bytes.Equal(got, data) {
			t.Errorf("%s holds different data", s.UUID())
		}
	}
	if _, err := kc.Put(context.Background(), data, keepclient.PutOptions{Hash: "nothex"}); err == nil {
		t.Error("bad caller hash accepted")
	}
}

func TestPutDemotesServiceThatRefused(t *testing.T) {
	c := keeptest.NewCluster(t, 5)
	kc := newClient(t, c)
	// Find two blocks whose probe orders start with the same server.
	dataA, hashA := block("demote A")
	victim := c.ProbeOrder(hashA)[0]
	var dataB []byte
	for i := 0; ; i++ {
		d, h := block(fmt.Sprint("demote B ", i))
		if c.ProbeOrder(h)[0] == victim {
			dataB = d
			break
		}
	}
	victim.Kill()
	resA, err := kc.Put(context.Background(), dataA, keepclient.PutOptions{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if resA.Attempts[0].Service.UUID != victim.UUID() && resA.Attempts[1].Service.UUID != victim.UUID() {
		t.Fatalf("first write did not try the dead server first: %+v", resA.Attempts)
	}
	resB, err := kc.Put(context.Background(), dataB, keepclient.PutOptions{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range resB.Attempts {
		if a.Service.UUID == victim.UUID() {
			t.Errorf("second write tried the server that just refused: %+v", resB.Attempts)
		}
	}
	// Still used when it is the only way to reach the count.
	resC, err := kc.Put(context.Background(), []byte("all five"), keepclient.PutOptions{Replicas: 5})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) || resC.Replicas != 4 {
		t.Fatalf("Put of 5: %v", err)
	}
}

func TestPutRefreshesServicesBetweenPasses(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	all := c.Services()
	var refreshes int
	kc := newClient(t, c, func(o *keepclient.Options) {
		// The client starts knowing only two services; the third appears
		// when it asks again after falling short.
		o.Services = all[:2]
		o.Refresh = func(context.Context) ([]keepclient.Service, error) {
			refreshes++
			return all, nil
		}
	})
	data, hash := block("refresh")
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
	if err != nil || res.Replicas != 3 {
		t.Fatalf("Put: %v", err)
	}
	if refreshes != 1 || len(c.Holders(hash)) != 3 {
		t.Errorf("refreshes %d, holders %d", refreshes, len(c.Holders(hash)))
	}
}
