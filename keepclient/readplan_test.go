package keepclient

import (
	"fmt"
	"testing"
	"time"

	"github.com/keepproject/keep/locator"
)

func uuids(svcs []Service) []string {
	var out []string
	for _, s := range svcs {
		out = append(out, s.UUID)
	}
	return out
}

func TestReadOrder(t *testing.T) {
	all := disks(4)
	gw := Service{UUID: "zzzzz-bi6l4-gateway00000000", Host: "gw", Port: 1, Type: "gateway:tcp"}
	all = append(all, gw)
	loc := func(hints ...string) locator.Locator {
		s := testHash + "+3"
		for _, h := range hints {
			s += "+" + h
		}
		l, err := locator.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	probe := uuids(ProbeOrder(testHash, all[:4]))
	remote := Service{UUID: "xxxxx-bi6l4-remoteproxy0000", Host: "keep.xxxxx.example", Port: 443, TLS: true, Type: TypeProxy}
	tests := []struct {
		name    string
		loc     locator.Locator
		demote  func([]Service) []Service
		remotes map[string]Service
		want    []string
	}{
		{"probe order", loc(), nil, nil, probe},
		{"hinted service first", loc("K@" + probe[2]), nil, nil, append([]string{probe[2]}, probe[0], probe[1], probe[3])},
		{"gateway only when hinted", loc("K@" + gw.UUID), nil, nil, append([]string{gw.UUID}, probe...)},
		{"unknown service hint ignored", loc("K@zzzzz-bi6l4-nosuchservice00"), nil, nil, probe},
		// A manifest from elsewhere must not make us send our token to
		// a host we were not configured with.
		{"remote cluster hint ignored", loc("K@xxxxx"), nil, nil, probe},
		{"remote cluster not configured", loc("K@xxxxx"), nil, map[string]Service{"yyyyy": remote}, probe},
		{"configured remote cluster first", loc("K@xxxxx"), nil, map[string]Service{"xxxxx": remote}, append([]string{remote.UUID}, probe...)},
		{"down services last", loc(), func(s []Service) []Service { return append(s[1:], s[0]) }, nil, append(probe[1:], probe[0])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := uuids(readOrder(tt.loc, all, tt.remotes, tt.demote))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("order %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadPlanPasses(t *testing.T) {
	p := newReadPlan(disks(3), testPasses(3, false))
	var asked []int
	fail := func(status int) ServiceResult {
		return ServiceResult{Status: status, Retryable: readRetryable(status)}
	}
	answers := map[int]int{0: 404, 1: 500, 2: 0}
	for i, ok := p.next(); ok; i, ok = p.next() {
		asked = append(asked, i)
		p.record(i, fail(answers[i]))
	}
	if fmt.Sprint(asked) != "[0 1 2]" || !p.retryable() {
		t.Fatalf("first pass asked %v, retryable %v", asked, p.retryable())
	}
	// A refresh adds a service; the next pass asks the retryable ones and
	// the new one, not the one that said 404.
	p.add(append(disks(3), disks(4)[3]))
	if !p.newPass() {
		t.Fatal("no second pass")
	}
	asked = nil
	for i, ok := p.next(); ok; i, ok = p.next() {
		asked = append(asked, i)
		p.record(i, fail(404))
	}
	if fmt.Sprint(asked) != "[1 2 3]" || p.pass != 2 {
		t.Fatalf("second pass asked %v (pass %d)", asked, p.pass)
	}
	if p.retryable() || p.newPass() {
		t.Fatal("a third pass with nothing retryable")
	}
	if _, ok := p.err(locator.Locator{Hash: testHash, Size: 3}).(*NotFoundError); !ok {
		t.Errorf("every service said 404 last: %v", p.err(locator.Locator{Hash: testHash, Size: 3}))
	}
}

func TestReadPlanMixedFailureIsNotNotFound(t *testing.T) {
	p := newReadPlan(disks(2), testPasses(3, false))
	p.record(0, ServiceResult{Status: 404})
	p.record(1, ServiceResult{Status: 502, Retryable: true})
	err := p.err(locator.Locator{Hash: testHash, Size: 3})
	re, ok := err.(*ReadError)
	if !ok || len(re.Services) != 2 || !re.Temporary() {
		t.Fatalf("err %v", err)
	}
}

// The rule for another read pass, and the pause before it, over what
// the first pass over 3 services heard.
func TestReadPlanAgain(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		max      int
		refresh  bool
		statuses []int // each service's answer, in order
		again    bool
	}{
		{"not found anywhere", 3, false, []int{404, 404, 404}, false},
		{"a server failing", 3, false, []int{404, 500, 404}, true},
		{"a network error", 3, false, []int{0, 404, 404}, true},
		{"any 503", 3, false, []int{404, 503, 404}, true},
		{"refused", 3, false, []int{403, 401, 404}, false},
		{"not found, but a refresh may add services", 3, true, []int{404, 404, 404}, true},
		{"the last pass", 1, true, []int{500, 500, 500}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newReadPlan(disks(3), testPasses(tt.max, tt.refresh))
			for i, ok := p.next(); ok; i, ok = p.next() {
				p.record(i, ServiceResult{Status: tt.statuses[i], Retryable: readRetryable(tt.statuses[i])})
			}
			want := time.Duration(0)
			if tt.again {
				want = 100 * ms // the backoff's first: reads take no Retry-After
			}
			if pause, again := p.again(); again != tt.again || pause != want {
				t.Errorf("again %v after %v, want %v after %v", again, pause, tt.again, want)
			}
		})
	}
}

// Pauses grow pass by pass, and the last pass is the last.
func TestReadPlanAgainPasses(t *testing.T) {
	p := newReadPlan(disks(2), testPasses(3, false))
	got := pausesOf(t, p, func() {
		for i, ok := p.next(); ok; i, ok = p.next() {
			p.record(i, ServiceResult{Status: 502, Retryable: true})
		}
	})
	ms := time.Millisecond
	if want := []time.Duration{100 * ms, 200 * ms}; fmt.Sprint(got) != fmt.Sprint(want) || p.pass != 3 {
		t.Errorf("pauses %v over %d passes, want %v over 3", got, p.pass, want)
	}
}

func TestPassRule(t *testing.T) {
	tests := []struct {
		pass, max          int
		retryable, refresh bool
		want               bool
	}{
		{1, 3, true, false, true},
		{2, 3, false, true, true},
		{1, 3, false, false, false},
		{3, 3, true, true, false},
		{4, 3, true, true, false},
		{1, 1, true, true, false},
	}
	for _, tt := range tests {
		r := passRule{max: tt.max, refresh: tt.refresh}
		if got := r.another(tt.pass, tt.retryable); got != tt.want {
			t.Errorf("%+v: another = %v, want %v", tt, got, tt.want)
		}
	}
}

func TestReadRetryable(t *testing.T) {
	for status, want := range map[int]bool{0: true, 404: false, 403: false, 408: true, 429: true, 500: true, 502: true, 503: true, 507: false} {
		if got := readRetryable(status); got != want {
			t.Errorf("readRetryable(%d) = %v", status, got)
		}
	}
}

func TestBackoff(t *testing.T) {
	// rand returns 1ms less than its limit: the pauses show the limit.
	ms := time.Millisecond
	top := func(n time.Duration) time.Duration { return n - ms }
	b := newBackoff(100*ms, top)
	var got []time.Duration
	for range 6 {
		got = append(got, b.next(0))
	}
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1000 * ms, 1000 * ms}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pauses %v, want %v", got, want)
	}
	zero := newBackoff(100*ms, func(time.Duration) time.Duration { return 0 })
	if d := zero.next(0); d != ms {
		t.Errorf("shortest pause %v, want 1ms", d)
	}
	if d := zero.next(5 * time.Second); d != 5*time.Second {
		t.Errorf("pause with a 5s Retry-After floor: %v", d)
	}
}
