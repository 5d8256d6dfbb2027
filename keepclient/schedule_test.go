package keepclient

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
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

// testPasses returns a pass rule of at most max passes whose pauses show
// the backoff's limit: 100ms, then 200ms, 400ms... (see TestBackoff).
func testPasses(max int, refresh bool) passRule {
	top := func(n time.Duration) time.Duration { return n - time.Millisecond }
	return passRule{max: max, refresh: refresh, wait: newBackoff(100*time.Millisecond, top)}
}

func plan(svcs []Service, wanted int, classes ...string) *writePlan {
	return newWritePlan(testHash, 1000, svcs, wanted, classes, testLag, testPasses(3, false), serviceHistory{})
}

// knowing returns a plan that knows from earlier writes what the services
// whose URLs are in expect each counted for.
func knowing(svcs []Service, wanted int, expect map[string]int) *writePlan {
	return newWritePlan(testHash, 1000, svcs, wanted, nil, testLag, testPasses(3, false), serviceHistory{expect: func(url string) int { return expect[url] }})
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
	q.expect = slices.Clone(p.expect)
	q.classes = slices.Clone(p.classes)
	q.confirmed = maps.Clone(p.confirmed)
	q.volumes = maps.Clone(p.volumes)
	return &q
}

// model is one state of a write explored by the exhaustive test: the plan
// and what the writer knows beyond it.
type model struct {
	p        *writePlan
	complete map[string]bool // services whose in-flight upload has sent its whole body
	counted  int             // uploads that counted for at least one replica
	held     int             // replicas the servers really hold, each volume once
	spare    []Service       // services a refresh may add
}

func (m *model) clone() *model {
	return &model{p: clonePlan(m.p), complete: maps.Clone(m.complete), counted: m.counted, held: m.held, spare: m.spare}
}

// hold notes the replicas a successful answer says the servers hold,
// counting each volume once: a named volume already counted adds none.
// The answers of the tests are honest.
func (m *model) hold(o outcome) {
	if !o.ok() {
		return
	}
	if o.volumes == nil {
		m.held += o.replicas
		return
	}
	for v, n := range o.volumes {
		if _, seen := m.p.volumes[v]; !seen {
			m.held += n
		}
	}
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
	b := make([]byte, 0, 256)
	for i, s := range m.p.svcs {
		b = append(b, s.UUID...)
		b = append(b, ':', byte('0'+m.p.state[i]), ':')
		b = strconv.AppendInt(b, int64(m.p.budget[i]), 10)
		b = strconv.AppendBool(append(b, ':'), m.complete[s.URL()])
		b = append(b, ';')
	}
	// Of the volumes named, only the shared one can be named again and
	// so change what later answers count for: a service's own volume is
	// named only by that service, which is never written again once it
	// has succeeded. (What else was named matters to stores() alone.)
	_, shared := m.p.volumes[sharedVolume]
	for _, n := range []int{m.p.stored, m.p.pass, m.counted, min(m.held, m.p.wanted+1)} {
		b = strconv.AppendInt(append(b, '|'), int64(n), 10)
	}
	b = strconv.AppendBool(append(b, '|'), m.p.tracking)
	b = strconv.AppendBool(append(b, '|'), shared)
	for _, c := range slices.Sorted(maps.Keys(m.p.confirmed)) {
		b = append(append(b, '|'), c...)
		b = strconv.AppendInt(append(b, '='), int64(m.p.confirmed[c]), 10)
	}
	return string(b)
}

// start starts every upload the plan allows, checking as each starts
// that the replicas counted plus those asked of uploads in flight, its
// own included, stay within what is wanted (for every class still
// pending, when classes are tracked).
func (m *model) start(t *testing.T, path *trail) {
	t.Helper()
	p := m.p
	for {
		i, ask, ok := p.next()
		if !ok {
			return
		}
		if ask < 1 || p.budget[i] != ask {
			t.Fatalf("%v: upload to %d started asking for %d (budget %d)", path, i, ask, p.budget[i])
		}
		if !p.tracking {
			if p.stored+p.asked > p.wanted {
				t.Fatalf("%v: upload to %d started with %d counted + %d asked > %d wanted", path, i, p.stored, p.asked, p.wanted)
			}
			continue
		}
		for _, c := range p.pendingClasses() {
			if n := p.confirmed[c]; n+p.asked > p.wanted {
				t.Fatalf("%v: upload to %d started with class %s: %d confirmed + %d asked > %d wanted", path, i, c, n, p.asked, p.wanted)
			}
		}
	}
}

// check asserts the write's invariants in state m.
func (m *model) check(t *testing.T, path *trail) {
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
	if p.stored < 0 || p.stored > p.wanted {
		t.Fatalf("%v: %d replicas counted of %d wanted", path, p.stored, p.wanted)
	}
	if p.stored > m.held {
		t.Fatalf("%v: %d replicas counted, %d held (each volume once)", path, p.stored, m.held)
	}
	for c, n := range p.confirmed {
		if n < 0 || n > p.wanted {
			t.Fatalf("%v: class %s: %d replicas confirmed of %d wanted", path, c, n, p.wanted)
		}
	}
	// Only so many servers can end up holding the block. (Copies in
	// classes not asked for may be needed to reach the others.)
	if len(p.classes) == 0 && m.counted+p.inflight > p.wanted {
		t.Fatalf("%v: %d uploads counted + %d in flight > %d wanted", path, m.counted, p.inflight, p.wanted)
	}
	if p.oneAtATime && p.inflight > 1 {
		t.Fatalf("%v: proxy mode with %d uploads in flight", path, p.inflight)
	}
}

// trail is the path of steps from the first state to the one explored,
// for messages: each step names the service it concerns (or -1) and
// what happened.
type trail struct {
	up   *trail
	i    int
	name string
}

func (tr *trail) String() string {
	var steps []string
	for ; tr != nil; tr = tr.up {
		step := tr.name
		if tr.i >= 0 {
			step = strconv.Itoa(tr.i) + ":" + step
		}
		steps = append(steps, step)
	}
	slices.Reverse(steps)
	return "[" + strings.Join(steps, " ") + "]"
}

// answer is one way an in-flight upload can end: from the uuid of the
// service and what was asked of it.
type testAnswer struct {
	name string
	out  func(uuid string, ask int) outcome
}

func ok(replicas int, classes map[string]int) outcome {
	return outcome{status: 200, replicas: replicas, classes: classes, elapsed: 10 * time.Millisecond}
}

// onVolumes is a successful answer naming the volumes holding the block.
func onVolumes(replicas int, volumes map[string]int, classes map[string]int) outcome {
	o := ok(replicas, classes)
	o.volumes = volumes
	return o
}

// sharedVolume is a volume every service of the exhaustive tests may
// store on, as servers sharing a bucket do; "own:uuid" is the service's
// own.
const sharedVolume = "shared"

var answers = []testAnswer{
	{"200", func(string, int) outcome { return ok(1, nil) }},
	{"200x2", func(string, int) outcome { return ok(2, nil) }}, // a volume of Replication 2, unnamed
	{"200 shared", func(string, int) outcome { return onVolumes(1, map[string]int{sharedVolume: 1}, nil) }},
	{"200 own x2 + shared", func(u string, _ int) outcome {
		return onVolumes(3, map[string]int{"own:" + u: 2, sharedVolume: 1}, nil)
	}},
	{"500", func(string, int) outcome { return outcome{status: 500} }},
	{"507", func(string, int) outcome { return outcome{status: 507} }},
	{"503busy", func(string, int) outcome { return outcome{status: 503, retryAfter: time.Second} }},
}

// without returns the answers but those named.
func without(answers []testAnswer, names ...string) []testAnswer {
	return slices.DeleteFunc(slices.Clone(answers), func(a testAnswer) bool { return slices.Contains(names, a.name) })
}

// explore walks every interleaving of upload completions, bodies
// completing, replacements for lag, passes and refreshes reachable from
// m, checking the invariants after every step.
func explore(t *testing.T, m *model, answers []testAnswer, seen map[string]bool, path *trail) {
	m.start(t, path)
	m.check(t, path)
	k := m.key()
	if seen[k] {
		return
	}
	seen[k] = true
	step := func(i int, name string, f func(*model)) {
		n := m.clone()
		f(n)
		explore(t, n, answers, seen, &trail{up: path, i: i, name: name})
	}
	flying := m.inFlight()
	for _, i := range flying {
		url := m.p.svcs[i].URL()
		for _, a := range answers {
			step(i, a.name, func(n *model) {
				o := a.out(n.p.svcs[i].UUID, n.p.budget[i])
				missing := n.p.wanted - n.p.stored
				delete(n.complete, url)
				n.hold(o)
				got := n.p.record(i, o)
				if got < 0 || got > missing || (!o.ok() && got != 0) {
					t.Fatalf("%v: %s counted for %d with %d missing", path, a.name, got, missing)
				}
				if got > 0 {
					n.counted++
				}
			})
		}
		if !m.complete[url] {
			step(i, "body", func(n *model) { n.complete[url] = true })
		}
	}
	if len(flying) > 0 {
		// Every in-flight upload lags: known slow, at a time far ahead.
		step(-1, "lag", func(n *model) {
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
		step(-1, "pass", func(n *model) { n.p.newPass() })
		if len(m.spare) > 0 {
			step(-1, "refresh+1", func(n *model) {
				n.p.setServices(testHash, append(slices.Clone(n.p.svcs), n.spare[0]))
				n.spare = n.spare[1:]
				n.p.newPass()
			})
		}
		if len(m.p.svcs) > 1 {
			step(-1, "refresh-1", func(n *model) {
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
		testAnswer{"200all", func(_ string, ask int) outcome { return ok(ask, nil) }},
		testAnswer{"200all+5", func(_ string, ask int) outcome { return ok(ask+5, nil) }},
	)
	tests := []struct {
		name    string
		svcs    []Service
		wanted  int
		known   bool // earlier writes found what some services store
		answers []testAnswer
	}{
		{"disks 4, want 2", disks(4), 2, false, answers},
		{"disks 5, want 3", disks(5), 3, false, without(answers, "200 own x2 + shared", "200 shared")}, // for time
		{"disks 3, want 3", disks(3), 3, false, answers},
		{"disks 4, want 3, some known", disks(4), 3, true, answers},
		{"disks 4, want 2, some known", disks(4), 2, true, answers},
		{"proxies 3, want 3", proxies(disks(3)), 3, false, proxyAnswers},
		{"mixed 4, want 2", mixed(disks(4)), 2, true, proxyAnswers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spare := disks(len(tt.svcs) + 1)[len(tt.svcs):]
			var expect map[string]int
			if tt.known {
				// The first service in probe order stores two replicas,
				// the second none (its volume counted already), the
				// last nine.
				order := ProbeOrder(testHash, tt.svcs)
				expect = map[string]int{order[0].URL(): 2, order[1].URL(): 0, order[len(order)-1].URL(): 9}
			}
			m := &model{p: knowing(tt.svcs, tt.wanted, expect), complete: map[string]bool{}, spare: spare}
			seen := map[string]bool{}
			explore(t, m, tt.answers, seen, nil)
			t.Logf("%d states", len(seen))
		})
	}
}

func TestPlanClassesInvariantEveryInterleaving(t *testing.T) {
	classAnswers := []testAnswer{
		{"hot+cold", func(string, int) outcome { return ok(1, map[string]int{"hot": 1, "cold": 1}) }},
		{"hot", func(string, int) outcome { return ok(1, map[string]int{"hot": 1}) }},
		{"cold x2", func(string, int) outcome { return ok(2, map[string]int{"cold": 2}) }},
		{"hot+cold shared", func(string, int) outcome {
			return onVolumes(1, map[string]int{sharedVolume: 1}, map[string]int{"hot": 1, "cold": 1})
		}},
		{"cold own x2 + hot shared", func(u string, _ int) outcome {
			return onVolumes(3, map[string]int{"own:" + u: 2, sharedVolume: 1}, map[string]int{"hot": 1, "cold": 2})
		}},
		{"no classes", func(string, int) outcome { return ok(1, nil) }},
		{"500", func(string, int) outcome { return outcome{status: 500} }},
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

func TestPlanAsks(t *testing.T) {
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

// A disk service known from earlier writes to store two replicas is asked
// for two, and takes the place of two uploads; one known to count for
// nothing (its volume shared) is still asked for one.
func TestPlanAsksWhatEarlierWritesCounted(t *testing.T) {
	order := ProbeOrder(testHash, disks(4))
	tests := []struct {
		name   string
		wanted int
		expect map[string]int
		asks   string // the uploads started, service:ask
	}{
		{"unknown", 2, nil, "[0:1 1:1]"},
		{"first stores 2", 2, map[string]int{order[0].URL(): 2}, "[0:2]"},
		{"first stores 2, want 3", 3, map[string]int{order[0].URL(): 2}, "[0:2 1:1]"},
		{"first stores 5, want 3", 3, map[string]int{order[0].URL(): 5}, "[0:3]"},
		{"second stores 2, want 2", 2, map[string]int{order[1].URL(): 2}, "[0:1 1:1]"},
		{"first counted 0", 2, map[string]int{order[0].URL(): 0}, "[0:1 1:1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := knowing(disks(4), tt.wanted, tt.expect)
			var got []string
			for {
				i, ask, ok := p.next()
				if !ok {
					break
				}
				got = append(got, fmt.Sprintf("%d:%d", i, ask))
			}
			if fmt.Sprint(got) != tt.asks {
				t.Errorf("started %v, want %s", got, tt.asks)
			}
		})
	}
}

// A server answering two replicas with a failing peer: in either order of
// their answers, no third upload starts, once the client knows what the
// server stores. Not knowing it, a failure that comes first starts the
// next service, which may turn out not to be needed.
func TestPlanTwoReplicaServerWithFailingPeer(t *testing.T) {
	order := ProbeOrder(testHash, disks(3))
	tests := []struct {
		name    string
		expect  map[string]int
		steps   []string // "ok2:i" or "fail:i", in order
		started string   // every upload started, in order
	}{
		{"answer first", nil, []string{"ok2:0", "fail:1"}, "[0 1]"},
		{"failure first, unknown", nil, []string{"fail:1", "ok2:0"}, "[0 1 2]"},
		{"known", map[string]int{order[0].URL(): 2}, []string{"ok2:0"}, "[0]"},
		{"known, and it fails", map[string]int{order[0].URL(): 2}, []string{"fail:0", "ok2:1"}, "[0 1 2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := knowing(disks(3), 2, tt.expect)
			started := startAll(p)
			for _, step := range tt.steps {
				var i int
				var what string
				fmt.Sscanf(strings.Replace(step, ":", " ", 1), "%s %d", &what, &i)
				if what == "ok2" {
					p.record(i, ok(2, nil))
				} else {
					p.record(i, outcome{status: 500})
				}
				started = append(started, startAll(p)...)
			}
			if fmt.Sprint(started) != tt.started || p.stored != 2 || !p.done() {
				t.Errorf("started %v, counted %d; want %s and 2", started, p.stored, tt.started)
			}
		})
	}
}

// What an answer counts for, table-driven: each case starts the uploads
// the plan allows, records the answers in order (starting what the plan
// allows after each) and checks the counts.
func TestPlanCounting(t *testing.T) {
	vols := func(kv ...any) map[string]int {
		m := map[string]int{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1].(int)
		}
		return m
	}
	type ans struct {
		i int
		o outcome
	}
	tests := []struct {
		name    string
		wanted  int
		classes []string
		answers []ans
		counts  string // what each answer counted for
		stored  int
		started string // every upload started
		volumes string // fmt of stores()
		classed string // fmt of confirmed; "" for not checked
	}{
		{"two replicas unnamed", 2, nil, []ans{{0, ok(2, nil)}, {1, ok(1, nil)}}, "[2 0]", 2, "[0 1]", "map[]", ""},
		{"nine replicas, two missing", 2, nil, []ans{{0, ok(9, nil)}}, "[2]", 2, "[0 1]", "map[]", ""},
		{"zero replicas", 1, nil, []ans{{0, ok(0, nil)}, {1, ok(1, nil)}}, "[0 1]", 1, "[0 1]", "map[]", ""},
		{"two servers, one volume", 2, nil,
			[]ans{{0, onVolumes(1, vols("v", 1), nil)}, {1, onVolumes(1, vols("v", 1), nil)}, {2, onVolumes(1, vols("w", 1), nil)}},
			"[1 0 1]", 2, "[0 1 2]", "map[v:1 w:1]", ""},
		{"volumes claiming more than replicas stored", 3, nil,
			[]ans{{0, onVolumes(1, vols("v", 1, "w", 1), nil)}, {1, onVolumes(1, vols("w", 1), nil)}},
			"[1 0]", 1, "[0 1 2 3]", "map[v:1 w:1]", ""},
		{"an old volume and a new one", 3, nil,
			[]ans{{0, onVolumes(1, vols("v", 1), nil)}, {1, onVolumes(2, vols("v", 1, "w", 1), nil)}},
			"[1 1]", 2, "[0 1 2]", "map[v:1 w:1]", ""},
		{"one answer naming no volumes", 2, nil,
			[]ans{{0, onVolumes(1, vols("v", 1), nil)}, {1, ok(1, nil)}},
			"[1 1]", 2, "[0 1]", "map[]", ""},
		{"classes on a volume already counted", 3, []string{"hot"},
			[]ans{{0, onVolumes(1, vols("v", 1), map[string]int{"hot": 1})}, {1, onVolumes(2, vols("v", 1, "w", 1), map[string]int{"hot": 2})}},
			"[1 1]", 2, "[0 1 2]", "map[v:1 w:1]", "map[hot:2]"},
		{"classes claiming more than replicas stored", 2, []string{"default"},
			[]ans{{0, ok(1, map[string]int{"default": 65536})}, {1, ok(1, map[string]int{"default": 1})}},
			"[1 1]", 2, "[0 1]", "map[]", "map[default:2]"},
		{"classes bounded by wanted", 2, []string{"hot", "cold"},
			[]ans{{0, ok(3, map[string]int{"hot": 3})}, {1, ok(1, map[string]int{"cold": 1})}, {2, ok(1, map[string]int{"cold": 1})}},
			"[2 0 0]", 2, "[0 1 2]", "map[]", "map[cold:2 hot:2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan(disks(4), tt.wanted, tt.classes...)
			started := startAll(p)
			var counts []int
			for _, a := range tt.answers {
				counts = append(counts, p.record(a.i, a.o))
				if p.last[a.i].counted != counts[len(counts)-1] {
					t.Errorf("answer of %d counted %d, recorded as %d", a.i, counts[len(counts)-1], p.last[a.i].counted)
				}
				started = append(started, startAll(p)...)
			}
			if fmt.Sprint(counts) != tt.counts || p.stored != tt.stored || fmt.Sprint(started) != tt.started || fmt.Sprint(p.stores()) != tt.volumes {
				t.Errorf("counts %v stored %d started %v volumes %v; want %s %d %s %s", counts, p.stored, started, p.stores(), tt.counts, tt.stored, tt.started, tt.volumes)
			}
			if tt.classed != "" && fmt.Sprint(p.confirmed) != tt.classed {
				t.Errorf("classes %v, want %s", p.confirmed, tt.classed)
			}
		})
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
			p := newWritePlan(testHash, size, disks(3), 1, nil, testLag, testPasses(3, false), serviceHistory{})
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

// runPass runs the plan's pass to its end, each upload answering as
// answers says for its service; a replaced outcome stands for an upload
// abandoned for lag.
func runPass(p *writePlan, answers map[int]outcome) {
	for !p.passOver() {
		for _, i := range startAll(p) {
			if o := answers[i]; o.replaced {
				p.replace(i, "lag")
			} else {
				p.record(i, o)
			}
		}
	}
}

// The rule for another pass, and the pause before it, over what the
// first pass of a write of 2 to 3 services heard.
func TestPlanAgain(t *testing.T) {
	ms := time.Millisecond
	good := outcome{status: 200, replicas: 1}
	full := outcome{status: 507}
	tests := []struct {
		name    string
		max     int
		refresh bool
		answers map[int]outcome
		again   bool
		pause   time.Duration
	}{
		{"done", 3, true, map[int]outcome{0: good, 1: good}, false, 0},
		{"a server failing", 3, false, map[int]outcome{0: good, 1: {status: 500}, 2: full}, true, 100 * ms},
		{"a network error", 3, false, map[int]outcome{0: good, 1: {}, 2: full}, true, 100 * ms},
		{"an upload replaced for lag", 3, false, map[int]outcome{0: good, 1: {replaced: true}, 2: full}, true, 100 * ms},
		{"too many requests", 3, false, map[int]outcome{0: good, 1: {status: 429}, 2: full}, true, 100 * ms},
		{"busy: Retry-After is the floor", 3, false, map[int]outcome{0: good, 1: {status: 503, retryAfter: 5 * time.Second}, 2: full}, true, 5 * time.Second},
		{"busy: a shorter Retry-After", 3, false, map[int]outcome{0: good, 1: {status: 503, retryAfter: 10 * ms}, 2: full}, true, 100 * ms},
		{"the longest Retry-After", 3, false, map[int]outcome{0: {status: 503, retryAfter: 2 * time.Second}, 1: {status: 503, retryAfter: 3 * time.Second}, 2: full}, true, 3 * time.Second},
		{"full servers", 3, false, map[int]outcome{0: good, 1: full, 2: full}, false, 0},
		{"503 without Retry-After is full", 3, false, map[int]outcome{0: good, 1: {status: 503}, 2: full}, false, 0},
		{"refused", 3, false, map[int]outcome{0: good, 1: {status: 403}, 2: {status: 400}}, false, 0},
		{"untrusted certificate", 3, false, map[int]outcome{0: good, 1: {final: true}, 2: full}, false, 0},
		{"full, but a refresh may add services", 3, true, map[int]outcome{0: good, 1: full, 2: full}, true, 100 * ms},
		{"the last pass", 1, true, map[int]outcome{0: good, 1: {status: 500}, 2: {status: 500}}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newWritePlan(testHash, 1000, disks(3), 2, nil, testLag, testPasses(tt.max, tt.refresh), serviceHistory{})
			runPass(p, tt.answers)
			pause, again := p.again()
			if again != tt.again || pause != tt.pause {
				t.Errorf("again %v after %v, want %v after %v", again, pause, tt.again, tt.pause)
			}
		})
	}
}

// pausesOf runs a write or read plan's passes, each by run, until the
// plan makes no more, and returns the pauses it chose between them.
func pausesOf(t *testing.T, p interface {
	again() (time.Duration, bool)
	newPass() bool
}, run func()) []time.Duration {
	t.Helper()
	var out []time.Duration
	for {
		run()
		pause, again := p.again()
		if !again {
			return out
		}
		out = append(out, pause)
		if !p.newPass() {
			t.Fatalf("nothing to retry after %d pauses", len(out))
		}
	}
}

// Pauses grow pass by pass; a Retry-After holds for the pass after the
// one that heard it; and the last pass is the last.
func TestPlanAgainPasses(t *testing.T) {
	ms := time.Millisecond
	p := newWritePlan(testHash, 1000, disks(3), 2, nil, testLag, testPasses(3, false), serviceHistory{})
	answers := map[int]outcome{0: {status: 200, replicas: 1}, 1: {status: 503, retryAfter: 5 * time.Second}, 2: {status: 507}}
	got := pausesOf(t, p, func() {
		runPass(p, answers)
		answers[1] = outcome{status: 500}
	})
	if want := []time.Duration{5 * time.Second, 200 * ms}; fmt.Sprint(got) != fmt.Sprint(want) || p.pass != 3 {
		t.Errorf("pauses %v over %d passes, want %v over 3", got, p.pass, want)
	}
}
