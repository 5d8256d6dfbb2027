package keepclient

import (
	"fmt"
	"testing"
)

func disks(n int) []Service {
	var s []Service
	for i := 0; i < n; i++ {
		s = append(s, Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", i), Host: "h", Port: 1000 + i, Type: TypeDisk})
	}
	return s
}

// startAll starts every upload the plan allows and returns their indexes.
func startAll(p *writePlan) []int {
	var out []int
	for {
		i, ok := p.next()
		if !ok {
			return out
		}
		out = append(out, i)
	}
}

func TestPlanNeverOverReplicates(t *testing.T) {
	// Explore every order in which in-flight uploads can finish, with
	// every mix of success and failure, and check stored + in flight
	// never exceeds the wanted count.
	const n, wanted = 5, 3
	var explore func(p *writePlan, inflight []int, depth int)
	explore = func(p *writePlan, inflight []int, depth int) {
		inflight = append(inflight, startAll(p)...)
		if p.stored+p.inflight > wanted {
			t.Fatalf("stored %d + in flight %d > %d", p.stored, p.inflight, wanted)
		}
		if len(inflight) == 0 || depth > 8 {
			return
		}
		for k := range inflight {
			for _, status := range []int{200, 500, 507} {
				q := clonePlan(p)
				rest := append(append([]int{}, inflight[:k]...), inflight[k+1:]...)
				q.record(inflight[k], outcome{status: status, replicas: 1})
				explore(q, rest, depth+1)
			}
		}
	}
	explore(newWritePlan("acbd18db4cc2f85cedef654fccc4a4d8", disks(n), wanted, nil, nil), nil, 0)
}

func clonePlan(p *writePlan) *writePlan {
	q := *p
	q.svcs = append([]Service(nil), p.svcs...)
	q.state = append([]svcState(nil), p.state...)
	q.last = append([]outcome(nil), p.last...)
	q.tried = append([]bool(nil), p.tried...)
	q.confirmed = make(map[string]int)
	for k, v := range p.confirmed {
		q.confirmed[k] = v
	}
	return &q
}

func TestPlanStartsFirstNThenNext(t *testing.T) {
	p := newWritePlan("acbd18db4cc2f85cedef654fccc4a4d8", disks(5), 2, nil, nil)
	if got := startAll(p); fmt.Sprint(got) != "[0 1]" {
		t.Fatalf("first uploads %v, want [0 1]", got)
	}
	p.record(0, outcome{status: 500})
	if got := startAll(p); fmt.Sprint(got) != "[2]" {
		t.Fatalf("after a failure started %v, want [2]", got)
	}
	p.record(1, outcome{status: 200, replicas: 1})
	p.record(2, outcome{status: 200, replicas: 1})
	if !p.done() || !p.passOver() {
		t.Fatal("plan not done after 2 successes")
	}
}

func TestPlanProxyOneAtATime(t *testing.T) {
	svcs := disks(3)
	svcs[2].Type = TypeProxy
	p := newWritePlan("acbd18db4cc2f85cedef654fccc4a4d8", svcs, 3, nil, nil)
	if got := startAll(p); len(got) != 1 {
		t.Fatalf("proxy mode started %v", got)
	}
	p.record(0, outcome{status: 200, replicas: 2})
	if p.need() != 1 {
		t.Fatalf("need %d after proxy stored 2 of 3", p.need())
	}
	if got := startAll(p); len(got) != 1 {
		t.Fatalf("started %v", got)
	}
}

func TestPlanClasses(t *testing.T) {
	p := newWritePlan("acbd18db4cc2f85cedef654fccc4a4d8", disks(5), 2, []string{"hot", "cold"}, nil)
	got := startAll(p)
	if len(got) != 2 {
		t.Fatalf("started %v", got)
	}
	p.record(got[0], outcome{status: 200, replicas: 1, classes: "hot=1, cold=1", hasClasses: true})
	p.record(got[1], outcome{status: 200, replicas: 1, classes: "hot=1", hasClasses: true})
	if p.done() || p.need() != 1 || fmt.Sprint(p.pendingClasses()) != "[cold]" {
		t.Fatalf("need %d pending %v", p.need(), p.pendingClasses())
	}
	// A server that does not confirm classes turns tracking off.
	next := startAll(p)
	p.record(next[0], outcome{status: 200, replicas: 1})
	if p.tracking || !p.done() {
		t.Fatalf("tracking %v done %v", p.tracking, p.done())
	}
}

func TestParseConfirmed(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"foo=1", "map[foo:1]", true},
		{" foo=1 , bar=2 ", "map[bar:2 foo:1]", true},
		{"", "", false},
		{" =foo=1 ", "", false},
		{"foo", "", false},
		{"foo=x", "", false},
	}
	for _, tt := range tests {
		m, ok := parseConfirmed(tt.in)
		if ok != tt.ok || (ok && fmt.Sprint(m) != tt.want) {
			t.Errorf("parseConfirmed(%q) = %v, %v", tt.in, m, ok)
		}
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		o    outcome
		want bool
	}{
		{outcome{status: 0}, true},
		{outcome{status: 408}, true},
		{outcome{status: 429}, true},
		{outcome{status: 500}, true},
		{outcome{status: 502}, true},
		{outcome{status: 503}, false},
		{outcome{status: 503, retryAfter: 1}, true},
		{outcome{status: 507}, false},
		{outcome{status: 400}, false},
		{outcome{status: 401}, false},
		{outcome{status: 413}, false},
	}
	for _, tt := range tests {
		if got := tt.o.retryable(); got != tt.want {
			t.Errorf("retryable(%d, retryAfter %v) = %v", tt.o.status, tt.o.retryAfter, got)
		}
	}
}
