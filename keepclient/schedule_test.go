package keepclient

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

const testHash = "acbd18db4cc2f85cedef654fccc4a4d8"

var testLag = lagRule{factor: 2, least: 300 * time.Millisecond}

func disks(n int) []Service {
	var s []Service
	for i := 0; i < n; i++ {
		s = append(s, Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", i), Host: "h", Port: 1000 + i, Type: TypeDisk})
	}
	return s
}

func plan(svcs []Service, wanted int, classes ...string) *writePlan {
	return newWritePlan(testHash, 1000, svcs, wanted, classes, testLag, nil)
}

// startAll starts every upload the plan allows and returns their indexes.
func startAll(p *writePlan) []int {
	var out []int
	for {
		i, _, ok := p.next()
		if !ok {
			return out
		}
		out = append(out, i)
	}
}

func clonePlan(p *writePlan) *writePlan {
	q := *p
	q.svcs = slices.Clone(p.svcs)
	q.state = slices.Clone(p.state)
	q.last = slices.Clone(p.last)
	q.tried = slices.Clone(p.tried)
	q.budget = slices.Clone(p.budget)
	q.classes = slices.Clone(p.classes)
	q.confirmed = maps.Clone(p.confirmed)
	return &q
}

// model is one state of a write explored by the exhaustive test: the plan
// and what the writer knows beyond it.
type model struct {
	p        *writePlan
	complete map[string]bool // services whose in-flight upload has sent its whole body
	uploads  int             // uploads that succeeded
	spare    []Service       // services a refresh may add
}

func (m *model) clone() *model {
	return &model{p: clonePlan(m.p), complete: maps.Clone(m.complete), uploads: m.uploads, spare: m.spare}
}

func (m *model) inFlight() []int {
	var out []int
	for i, st := range m.p.state {
		if st == inFlight {
			out = append(out, i)
		}
	}
	return out
}

func (m *model) key() string {
	var b strings.Builder
	for i, s := range m.p.svcs {
		fmt.Fprintf(&b, "%s:%d:%d:%v;", s.UUID, m.p.state[i], m.p.budget[i], m.complete[s.URL()])
	}
	fmt.Fprintf(&b, "|%d|%d|%d|%v|%v", m.p.stored, m.p.pass, m.uploads, m.p.tracking, m.p.confirmed)
	return b.String()
}

// check asserts the write's invariants in state m.
func (m *model) check(t *testing.T, path []string) {
	t.Helper()
	p := m.p
	asked := 0
	for i, st := range p.state {
		if st == inFlight {
			asked += p.budget[i]
			if p.budget[i] < 1 {
				t.Fatalf("%v: upload to %d asks for %d replicas", path, i, p.budget[i])
			}
		} else if p.budget[i] != 0 {
			t.Fatalf("%v: service %d not in flight has budget %d", path, i, p.budget[i])
		}
	}
	if asked != p.asked || len(m.inFlight()) != p.inflight {
		t.Fatalf("%v: plan counts %d asked, %d in flight; really %d, %d", path, p.asked, p.inflight, asked, len(m.inFlight()))
	}
	switch {
	case len(p.classes) == 0:
		if p.stored+p.asked > p.wanted {
			t.Fatalf("%v: stored %d + asked of in-flight uploads %d > %d wanted", path, p.stored, p.asked, p.wanted)
		}
		if m.uploads+p.inflight > p.wanted {
			t.Fatalf("%v: %d uploads stored + %d in flight > %d wanted", path, m.uploads, p.inflight, p.wanted)
		}
	case p.tracking:
		// Copies in classes not asked for are needed to reach the
		// others; no pending class is ever over-asked.
		for _, c := range p.classes {
			if n := p.confirmed[c]; n < p.wanted && n+p.asked > p.wanted {
				t.Fatalf("%v: class %s: confirmed %d + asked %d > %d wanted", path, c, n, p.asked, p.wanted)
			}
		}
	}
	if p.oneAtATime && p.inflight > 1 {
		t.Fatalf("%v: proxy mode with %d uploads in flight", path, p.inflight)
	}
}

// answer is one way an in-flight upload can end.
type testAnswer struct {
	name string
	out  func(desired int) outcome
}

func ok(replicas int, classes map[string]int) outcome {
	return outcome{status: 200, replicas: replicas, classes: classes, elapsed: 10 * time.Millisecond}
}

var answers = []testAnswer{
	{"200", func(int) outcome { return ok(1, nil) }},
	{"200x3", func(d int) outcome { return ok(min(3, d), nil) }}, // a server with more replicas per volume, capped by parseUpload
	{"500", func(int) outcome { return outcome{status: 500} }},
	{"507", func(int) outcome { return outcome{status: 507} }},
	{"503busy", func(int) outcome { return outcome{status: 503, retryAfter: time.Second} }},
}

// explore walks every interleaving of upload completions, bodies
// completing, replacements for lag, passes and refreshes reachable from
// m, checking the invariants after every step.
func explore(t *testing.T, m *model, answers []testAnswer, seen map[string]bool, path []string) {
	startAll(m.p)
	m.check(t, path)
	k := m.key()
	if seen[k] {
		return
	}
	seen[k] = true
	step := func(name string, f func(*model)) {
		n := m.clone()
		f(n)
		explore(t, n, answers, seen, append(slices.Clip(path), name))
	}
	flying := m.inFlight()
	for _, i := range flying {
		url := m.p.svcs[i].URL()
		for _, a := range answers {
			step(fmt.Sprintf("%d:%s", i, a.name), func(n *model) {
				o := a.out(n.p.budget[i])
				if o.ok() {
					n.uploads++
				}
				delete(n.complete, url)
				n.p.record(i, o)
			})
		}
		if !m.complete[url] {
			step(fmt.Sprintf("%d:body", i), func(n *model) { n.complete[url] = true })
		}
	}
	if len(flying) > 0 {
		// Every in-flight upload lags: known slow, at a time far ahead.
		step("lag", func(n *model) {
			begun := time.Unix(1000, 0)
			reps, _ := n.p.lagging(begun.Add(time.Hour), func(i int) progress {
				return progress{begun: begun, complete: n.complete[n.p.svcs[i].URL()], knownSlow: true}
			})
			if len(reps) > n.p.untried() {
				t.Fatalf("%v: %d replacements for %d untried services", path, len(reps), n.p.untried())
			}
			for _, r := range reps {
				if n.complete[n.p.svcs[r.i].URL()] {
					t.Fatalf("%v: replaced the upload to %d after its whole body was sent", path, r.i)
				}
				if n.p.state[r.i] != inFlight {
					t.Fatalf("%v: replaced %d, which is not in flight", path, r.i)
				}
				n.p.replace(r.i, "lag")
			}
		})
	}
	if m.p.passOver() && !m.p.done() && m.p.pass < 3 {
		step("pass", func(n *model) { n.p.newPass() })
		if len(m.spare) > 0 {
			step("refresh+1", func(n *model) {
				n.p.setServices(testHash, append(slices.Clone(n.p.svcs), n.spare[0]))
				n.spare = n.spare[1:]
				n.p.newPass()
			})
		}
		if len(m.p.svcs) > 1 {
			step("refresh-1", func(n *model) {
				n.p.setServices(testHash, n.p.svcs[1:])
				n.p.newPass()
			})
		}
	}
}

func TestPlanInvariantEveryInterleaving(t *testing.T) {
	proxies := func(svcs []Service) []Service {
		for i := range svcs {
			svcs[i].Type = TypeProxy
		}
		return svcs
	}
	mixed := func(svcs []Service) []Service {
		svcs[1].Type = TypeProxy
		return svcs
	}
	proxyAnswers := append(slices.Clone(answers),
		testAnswer{"200all", func(d int) outcome { return ok(d, nil) }},
		testAnswer{"200all+5", func(d int) outcome { return ok(d+5, nil) }}, // more than asked: the plan's own cap
	)
	tests := []struct {
		name    string
		svcs    []Service
		wanted  int
		answers []testAnswer
	}{
		{"disks 4, want 2", disks(4), 2, answers},
		{"disks 5, want 3", disks(5), 3, answers},
		{"disks 3, want 3", disks(3), 3, answers},
		{"proxies 3, want 3", proxies(disks(3)), 3, proxyAnswers},
		{"mixed 4, want 2", mixed(disks(4)), 2, proxyAnswers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spare := disks(len(tt.svcs) + 1)[len(tt.svcs):]
			m := &model{p: plan(tt.svcs, tt.wanted), complete: map[string]bool{}, spare: spare}
			seen := map[string]bool{}
			explore(t, m, tt.answers, seen, nil)
			t.Logf("%d states", len(seen))
		})
	}
}

func TestPlanClassesInvariantEveryInterleaving(t *testing.T) {
	classAnswers := []testAnswer{
		{"hot+cold", func(d int) outcome { return ok(1, map[string]int{"hot": 1, "cold": 1}) }},
		{"hot", func(d int) outcome { return ok(1, map[string]int{"hot": 1}) }},
		{"cold x3", func(d int) outcome { return ok(min(3, d), map[string]int{"cold": min(3, d)}) }},
		{"no classes", func(int) outcome { return ok(1, nil) }},
		{"500", func(int) outcome { return outcome{status: 500} }},
	}
	m := &model{p: plan(disks(4), 2, "hot", "cold"), complete: map[string]bool{}}
	seen := map[string]bool{}
	explore(t, m, classAnswers, seen, nil)
	t.Logf("%d states", len(seen))
}

func TestPlanStartsFirstNThenNext(t *testing.T) {
	p := plan(disks(5), 2)
	if got := startAll(p); fmt.Sprint(got) != "[0 1]" {
		t.Fatalf("first uploads %v, want [0 1]", got)
	}
	p.record(0, outcome{status: 500})
	if got := startAll(p); fmt.Sprint(got) != "[2]" {
		t.Fatalf("after a failure started %v, want [2]", got)
	}
	p.record(1, ok(1, nil))
	p.record(2, ok(1, nil))
	if !p.done() || !p.passOver() {
		t.Fatal("plan not done after 2 successes")
	}
}

func TestPlanDesiredReplicas(t *testing.T) {
	// Disk uploads run N at once, asked for one replica each; in proxy
	// mode one upload at a time is asked for everything missing.
	p := plan(disks(4), 3)
	for range 3 {
		if _, d, ok := p.next(); !ok || d != 1 {
			t.Fatalf("disk upload asked for %d (ok %v)", d, ok)
		}
	}
	svcs := disks(3)
	svcs[2].Type = TypeProxy
	p = plan(svcs, 3)
	i, d, ok1 := p.next()
	if !ok1 || d != 3 {
		t.Fatalf("first proxy-mode upload asked for %d", d)
	}
	if _, _, more := p.next(); more {
		t.Fatal("second upload in proxy mode")
	}
	p.record(i, ok(2, nil))
	if _, d, _ := p.next(); d != 1 {
		t.Fatalf("after 2 of 3 stored, asked for %d", d)
	}
}

func TestPlanCountsAtMostWhatWasAsked(t *testing.T) {
	p := plan(disks(3), 2)
	got := startAll(p)
	p.record(got[0], ok(9, map[string]int{"default": 9}))
	if p.stored != 1 || p.confirmed["default"] != 1 {
		t.Errorf("an upload asked for 1 counted %d (classes %v)", p.stored, p.confirmed)
	}
}

func TestPlanClasses(t *testing.T) {
	p := plan(disks(5), 2, "hot", "cold")
	got := startAll(p)
	if len(got) != 2 {
		t.Fatalf("started %v", got)
	}
	p.record(got[0], ok(1, map[string]int{"hot": 1, "cold": 1}))
	p.record(got[1], ok(1, map[string]int{"hot": 1}))
	if p.done() || p.need() != 1 || fmt.Sprint(p.pendingClasses()) != "[cold]" {
		t.Fatalf("need %d pending %v", p.need(), p.pendingClasses())
	}
	// A server that does not confirm classes turns tracking off.
	next := startAll(p)
	p.record(next[0], ok(1, nil))
	if p.tracking || !p.done() {
		t.Fatalf("tracking %v done %v", p.tracking, p.done())
	}
}

func TestPlanReplaceStartsNext(t *testing.T) {
	p := plan(disks(4), 2)
	startAll(p) // 0 and 1
	p.record(0, ok(1, nil))
	p.replace(1, "lag")
	if got := startAll(p); fmt.Sprint(got) != "[2]" {
		t.Fatalf("after replacing 1 started %v, want [2]", got)
	}
	if p.state[1] != retryLater || !p.last[1].replaced || p.replaced != 1 {
		t.Fatalf("replaced service: state %d, last %+v", p.state[1], p.last[1])
	}
	p.record(2, outcome{status: 507})
	if got := startAll(p); fmt.Sprint(got) != "[3]" {
		t.Fatalf("started %v, want [3]", got)
	}
	p.record(3, outcome{status: 500})
	if !p.passOver() || p.done() || !p.newPass() {
		t.Fatal("no second pass")
	}
	// The replaced service is tried again in the next pass, the full one not.
	if got := startAll(p); fmt.Sprint(got) != "[1]" {
		t.Fatalf("second pass started %v, want [1]", got)
	}
}

// The lag rule, with the clock and progress passed in.
func TestPlanLagging(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const size = 1000
	ms := time.Millisecond
	tests := []struct {
		name     string
		fastest  time.Duration
		pr       progress
		now      time.Duration // after t0
		replace  bool
		measured bool
		wake     time.Duration // after t0; 0 means no wake
	}{
		{"nothing to compare with", 0, progress{begun: t0}, 5 * time.Second, false, false, 5*time.Second + 300*ms},
		{"waiting for a slot", 10 * ms, progress{}, time.Second, false, false, time.Second + 300*ms},
		{"before the least time", 10 * ms, progress{begun: t0}, 100 * ms, false, false, 300 * ms},
		{"before factor × fastest", 200 * ms, progress{begun: t0}, 350 * ms, false, false, 400 * ms},
		{"lagging, nothing sent", 200 * ms, progress{begun: t0}, 400 * ms, true, true, 0},
		{"lagging, slow so far", 100 * ms, progress{begun: t0, sent: 100}, time.Second, true, true, 0},
		{"slow start, finishing fast", 100 * ms, progress{begun: t0, sent: 950}, time.Second, false, false, time.Second + 300*ms},
		{"whole body sent", 10 * ms, progress{begun: t0, sent: size, complete: true}, time.Hour, false, false, 0},
		{"known slow", 0, progress{begun: t0, knownSlow: true}, 0, true, false, 0},
		{"known slow, whole body sent", 0, progress{begun: t0, knownSlow: true, complete: true}, 0, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newWritePlan(testHash, size, disks(3), 1, nil, testLag, nil)
			i, _, _ := p.next()
			p.fastest = tt.fastest
			reps, wake := p.lagging(t0.Add(tt.now), func(int) progress { return tt.pr })
			if got := len(reps) == 1; got != tt.replace || (got && (reps[0].i != i || reps[0].measured != tt.measured)) {
				t.Errorf("replacements %+v, want replace %v measured %v", reps, tt.replace, tt.measured)
			}
			var want time.Time
			if tt.wake != 0 {
				want = t0.Add(tt.wake)
			}
			if !wake.Equal(want) {
				t.Errorf("wake %v, want %v", wake.Sub(t0), tt.wake)
			}
		})
	}
}

// No replacement without an untried service to take its place.
func TestPlanLaggingNeedsASpare(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := plan(disks(3), 2)
	startAll(p) // 0, 1
	slow := func(int) progress { return progress{begun: t0, knownSlow: true} }
	if reps, _ := p.lagging(t0, slow); len(reps) != 1 {
		t.Fatalf("%d replacements with one spare service", len(reps))
	}
	p.replace(0, "lag")
	startAll(p) // 2
	if reps, wake := p.lagging(t0, slow); len(reps) != 0 || !wake.IsZero() {
		t.Fatalf("replacements %v (wake %v) with no spare service", reps, wake)
	}
}
