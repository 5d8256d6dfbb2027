package keepstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/protocol"
)

// orderedHash is a block hash for which the volumes v0, v1, ... v5 are
// in rendezvous order, so that the tests can list candidates in order.
var orderedHash = func() string {
	ids := []string{"v0", "v1", "v2", "v3", "v4", "v5"}
	for i := 0; ; i++ {
		h := fmt.Sprintf("%032x", i)
		ms := make([]*mount, len(ids))
		for j, id := range ids {
			ms[j] = &mount{id: id}
		}
		if slices.IsSortedFunc(rendezvous(h, ms), func(a, b *mount) int { return strings.Compare(a.id, b.id) }) {
			return h
		}
	}
}()

// testMounts returns mounts v0, v1, ... in rendezvous order for
// orderedHash, from specs such as "a b" (classes a and b), "ro default"
// (read-only) or "default x2" (Replication 2).
func testMounts(specs ...string) []*mount {
	ms := make([]*mount, len(specs))
	for i, spec := range specs {
		m := &mount{id: fmt.Sprintf("v%d", i), replication: 1}
		for f := range strings.FieldsSeq(spec) {
			switch {
			case f == "ro":
				m.readOnly = true
			case f == "x2":
				m.replication = 2
			default:
				m.classes = append(m.classes, f)
			}
		}
		slices.Sort(m.classes)
		ms[i] = m
	}
	return ms
}

var errDisk = errors.New("disk error")

// scripted is a step's result as a test scripts it: what the step
// returns, and whether it read any of the body or failed the body.
type scripted struct {
	err      error
	readBody bool
	badBody  bool
}

// scriptedResults are the results a test may give a step, by name.
var scriptedResults = map[string]scripted{
	"ok":       {readBody: true},   // for steps that read no body, readBody is ignored
	"found":    {},                 // stat: a copy is there
	"missing":  {err: ErrNotFound}, // stat: none is
	"gone":     {err: ErrNotFound}, // compare: the copy vanished before a byte was read
	"fails":    {err: errDisk},     // failed before reading the body
	"breaks":   {err: errDisk, readBody: true},
	"full":     {err: ErrFull},
	"fills":    {err: ErrFull, readBody: true}, // full only once part of the body was written
	"busy":     {err: ErrBusy},
	"differs":  {err: errDiffers, readBody: true},
	"bad body": {readBody: true, badBody: true},
}

// readsBody reports whether op reads the request body.
func readsBody(op stepOp) bool {
	return op == opCompare || op == opRepair || op == opPut || op == opFinish
}

// run carries out p's steps with the results choose names for them, and
// returns the steps and the notices' messages. Steps choose has no
// result for succeed, except stat, which finds no copy.
func run(t *testing.T, p *placement, choose func(st step) string) (steps, notes []string) {
	var bodyRead bool
	var bodyErr error
	for st := p.next(); st.op != opDone; st = p.next() {
		if len(steps) > 100 {
			t.Fatalf("no end after steps %v", steps)
		}
		steps = append(steps, st.String())
		name := choose(st)
		if name == "" {
			name = "ok"
			if st.op == opStat {
				name = "missing"
			}
		}
		o, ok := scriptedResults[name]
		if !ok {
			t.Fatalf("no result %q", name)
		}
		res := result{err: o.err}
		if readsBody(st.op) {
			bodyRead = bodyRead || o.readBody
			if o.badBody {
				bodyErr = fmt.Errorf("%w: body has MD5 0, locator says 1", errHashMismatch)
				res.err = bodyErr
			}
		}
		res.bodyErr, res.bodyRead = bodyErr, bodyRead
		if n := p.record(res); n.msg != "" {
			notes = append(notes, n.msg+" "+n.m.id)
		}
	}
	return steps, notes
}

// TestPlacement: the steps of a PUT, and how it ends, for the volumes,
// the classes wanted and the results of the steps.
func TestPlacement(t *testing.T) {
	tests := []struct {
		name     string
		mounts   []string
		classes  []string          // nil: default
		script   map[string]string // step -> result (scriptedResults)
		steps    string
		code     int
		msg      string // part of the message
		replicas int
		volumes  string // X-Keep-Volumes-Stored; the classes confirmed are checked against it
		notes    []string
	}{
		{name: "no writable volume", mounts: []string{"ro default", "ro a"},
			steps: "", code: 507, msg: "all volumes are read-only"},
		{name: "no volume of the class", mounts: []string{"a", "ro b"}, classes: []string{"b", "c"},
			steps: "", code: 507, msg: "no writable volume has storage class b or c"},
		{name: "new block to the first candidate", mounts: []string{"default", "default"},
			steps: "stat v0, stat v1, put v0, finish", code: 200, replicas: 1, volumes: "v0=1"},
		{name: "read-only volumes are no candidates", mounts: []string{"ro default", "default"},
			steps: "stat v1, put v1, finish", code: 200, replicas: 1, volumes: "v1=1"},
		{name: "volumes of other classes are no candidates", mounts: []string{"a", "default"},
			steps: "stat v1, put v1, finish", code: 200, replicas: 1, volumes: "v1=1"},
		{name: "a full volume is passed over", mounts: []string{"default", "default"},
			script: map[string]string{"put v0": "full"},
			steps:  "stat v0, stat v1, put v0, put v1, finish", code: 200, replicas: 1, volumes: "v1=1"},
		{name: "a failing volume is passed over", mounts: []string{"default", "default"},
			script: map[string]string{"put v0": "fails"},
			steps:  "stat v0, stat v1, put v0, put v1, finish", code: 200, replicas: 1, volumes: "v1=1"},
		{name: "all full", mounts: []string{"default", "default"},
			script: map[string]string{"put v0": "full", "put v1": "full"},
			steps:  "stat v0, stat v1, put v0, put v1", code: 507, msg: "insufficient storage"},
		{name: "full and busy", mounts: []string{"default", "default"},
			script: map[string]string{"put v0": "full", "put v1": "busy"},
			steps:  "stat v0, stat v1, put v0, put v1", code: 503, msg: "volume busy"},
		{name: "full and failing", mounts: []string{"default", "default"},
			script: map[string]string{"put v0": "fails", "put v1": "full"},
			steps:  "stat v0, stat v1, put v0, put v1", code: 503, msg: "volume unavailable"},
		{name: "a volume failing mid-body ends the PUT", mounts: []string{"default", "default"},
			script: map[string]string{"put v0": "breaks"},
			steps:  "stat v0, stat v1, put v0", code: 503, msg: "volume unavailable"},
		{name: "a volume filling mid-body ends the PUT", mounts: []string{"default", "default"},
			script: map[string]string{"put v0": "fills"},
			steps:  "stat v0, stat v1, put v0", code: 507, msg: "insufficient storage"},
		{name: "a bad body", mounts: []string{"default", "default"},
			script: map[string]string{"put v0": "bad body"},
			steps:  "stat v0, stat v1, put v0", code: 400, msg: "hash mismatch"},
		{name: "a bad body found at the end", mounts: []string{"default"},
			script: map[string]string{"finish": "bad body"},
			steps:  "stat v0, put v0, finish", code: 400, msg: "hash mismatch"},
		{name: "an existing copy is compared and refreshed, not written", mounts: []string{"default", "default"},
			script: map[string]string{"stat v1": "found"},
			steps:  "stat v0, stat v1, compare v1, touch v1, finish", code: 200, replicas: 1, volumes: "v1=1"},
		{name: "only the first existing copy is compared", mounts: []string{"default", "default"},
			script: map[string]string{"stat v0": "found", "stat v1": "found"},
			steps:  "stat v0, stat v1, compare v0, touch v0, finish", code: 200, replicas: 1, volumes: "v0=1"},
		{name: "a copy gone before the compare is passed over", mounts: []string{"default", "default"},
			script: map[string]string{"stat v0": "found", "stat v1": "found", "compare v0": "gone"},
			steps:  "stat v0, stat v1, compare v0, compare v1, touch v1, finish", code: 200, replicas: 1, volumes: "v1=1"},
		{name: "with every copy gone, the body is written", mounts: []string{"default", "default"},
			script: map[string]string{"stat v1": "found", "compare v1": "gone"},
			steps:  "stat v0, stat v1, compare v1, put v0, finish", code: 200, replicas: 1, volumes: "v0=1"},
		{name: "a compare failing mid-body ends the PUT", mounts: []string{"default", "default"},
			script: map[string]string{"stat v0": "found", "compare v0": "breaks"},
			steps:  "stat v0, stat v1, compare v0", code: 503, msg: "volume unavailable"},
		{name: "a bad body against a copy", mounts: []string{"default"},
			script: map[string]string{"stat v0": "found", "compare v0": "bad body"},
			steps:  "stat v0, compare v0", code: 400, msg: "hash mismatch"},
		{name: "an existing copy that cannot be refreshed is copied", mounts: []string{"default", "default"},
			script: map[string]string{"stat v0": "found", "touch v0": "fails"},
			steps:  "stat v0, stat v1, compare v0, touch v0, finish, copy v0 v1", code: 200, replicas: 1, volumes: "v1=1",
			notes: []string{"touching existing block v0"}},
		{name: "an existing copy that cannot be refreshed, nowhere to copy it", mounts: []string{"default", "a"},
			script: map[string]string{"stat v0": "found", "touch v0": "fails"},
			steps:  "stat v0, compare v0, touch v0, finish", code: 503, msg: "volume unavailable",
			notes: []string{"touching existing block v0"}},
		{name: "a corrupt copy is repaired", mounts: []string{"default", "default"},
			script: map[string]string{"stat v1": "found", "compare v1": "differs", "verify v1": "fails"},
			steps:  "stat v0, stat v1, compare v1, verify v1, repair v1, finish", code: 200, replicas: 1, volumes: "v1=1",
			notes: []string{"replaced corrupt stored copy with the uploaded data v1"}},
		{name: "a failed repair", mounts: []string{"default", "default"},
			script: map[string]string{"stat v0": "found", "compare v0": "differs", "verify v0": "fails", "repair v0": "fails"},
			steps:  "stat v0, stat v1, compare v0, verify v0, repair v0", code: 503, msg: "volume unavailable"},
		{name: "a repair on a full volume", mounts: []string{"default", "default"},
			script: map[string]string{"stat v0": "found", "compare v0": "differs", "verify v0": "fails", "repair v0": "full"},
			steps:  "stat v0, stat v1, compare v0, verify v0, repair v0", code: 507, msg: "insufficient storage"},
		{name: "a repair with a bad body", mounts: []string{"default"},
			script: map[string]string{"stat v0": "found", "compare v0": "differs", "verify v0": "fails", "repair v0": "bad body"},
			steps:  "stat v0, compare v0, verify v0, repair v0", code: 400, msg: "hash mismatch"},
		{name: "a sound copy that differs: collision", mounts: []string{"default", "default"},
			script: map[string]string{"stat v0": "found", "compare v0": "differs"},
			steps:  "stat v0, stat v1, compare v0, verify v0, finish", code: 500, msg: "hash collision",
			notes: []string{"stored block differs from uploaded data v0"}},
		{name: "a sound copy that differs from a bad body", mounts: []string{"default"},
			script: map[string]string{"stat v0": "found", "compare v0": "differs", "finish": "bad body"},
			steps:  "stat v0, compare v0, verify v0, finish", code: 400, msg: "hash mismatch"},
		{name: "a copy per class", mounts: []string{"a", "b c", "default", "b"}, classes: []string{"a", "b"},
			steps: "stat v0, stat v1, stat v3, put v0, finish, copy v0 v1", code: 200, replicas: 2, volumes: "v0=1, v1=1"},
		{name: "one volume of both classes", mounts: []string{"a b", "b", "a"}, classes: []string{"a", "b"},
			steps: "stat v0, stat v1, stat v2, put v0, finish", code: 200, replicas: 1, volumes: "v0=1"},
		{name: "a class of no volume is left out", mounts: []string{"a"}, classes: []string{"a", "z"},
			steps: "stat v0, put v0, finish", code: 200, replicas: 1, volumes: "v0=1"},
		{name: "copies from the existing copy", mounts: []string{"a", "b"}, classes: []string{"a", "b"},
			script: map[string]string{"stat v1": "found"},
			steps:  "stat v0, stat v1, compare v1, touch v1, finish, copy v1 v0", code: 200, replicas: 2, volumes: "v0=1, v1=1"},
		{name: "a sound copy of another class is refreshed", mounts: []string{"a", "b"}, classes: []string{"a", "b"},
			script: map[string]string{"stat v0": "found", "stat v1": "found"},
			steps:  "stat v0, stat v1, compare v0, touch v0, finish, verify v1, touch v1", code: 200, replicas: 2, volumes: "v0=1, v1=1"},
		{name: "a corrupt copy of another class is overwritten", mounts: []string{"a", "b"}, classes: []string{"a", "b"},
			script: map[string]string{"stat v0": "found", "stat v1": "found", "verify v1": "fails"},
			steps:  "stat v0, stat v1, compare v0, touch v0, finish, verify v1, copy v0 v1", code: 200, replicas: 2, volumes: "v0=1, v1=1"},
		{name: "a copy of another class that cannot be refreshed is overwritten", mounts: []string{"a", "b"}, classes: []string{"a", "b"},
			script: map[string]string{"stat v0": "found", "stat v1": "found", "touch v1": "fails"},
			steps:  "stat v0, stat v1, compare v0, touch v0, finish, verify v1, touch v1, copy v0 v1", code: 200, replicas: 2, volumes: "v0=1, v1=1"},
		{name: "a failed copy is passed over for the next of its class", mounts: []string{"a", "b", "b"}, classes: []string{"a", "b"},
			script: map[string]string{"copy v0 v1": "fails"},
			steps:  "stat v0, stat v1, stat v2, put v0, finish, copy v0 v1, copy v0 v2", code: 200, replicas: 2, volumes: "v0=1, v2=1",
			notes: []string{"copying block for storage classes v1"}},
		{name: "the PUT succeeds with classes short", mounts: []string{"a", "b"}, classes: []string{"a", "b"},
			script: map[string]string{"copy v0 v1": "fails"},
			steps:  "stat v0, stat v1, put v0, finish, copy v0 v1", code: 200, replicas: 1, volumes: "v0=1",
			notes: []string{"copying block for storage classes v1"}},
		{name: "a volume of Replication 2", mounts: []string{"default x2", "default"},
			steps: "stat v0, stat v1, put v0, finish", code: 200, replicas: 2, volumes: "v0=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			classes := tt.classes
			if classes == nil {
				classes = []string{DefaultStorageClass}
			}
			p := newPlacement(orderedHash, testMounts(tt.mounts...), classes)
			steps, notes := run(t, p, func(st step) string { return tt.script[st.String()] })
			v := p.verdict()
			if got := strings.Join(steps, ", "); got != tt.steps {
				t.Errorf("steps:\n  %s\nwant\n  %s", got, tt.steps)
			}
			if v.code != tt.code || !strings.Contains(v.msg, tt.msg) {
				t.Errorf("verdict %d %q, want %d %q", v.code, v.msg, tt.code, tt.msg)
			}
			if !slices.Equal(notes, tt.notes) {
				t.Errorf("notices %q, want %q", notes, tt.notes)
			}
			if v.code != 200 {
				return
			}
			vols, _ := p.got.volumes()
			if p.got.replicas != tt.replicas || vols != tt.volumes {
				t.Errorf("replicas %d on %q, want %d on %q", p.got.replicas, vols, tt.replicas, tt.volumes)
			}
			want := map[string]int{}
			for _, m := range p.got.holders {
				for _, c := range m.classes {
					want[c] += m.replication
				}
			}
			if got, want := protocol.FormatConfirmed(p.got.done), protocol.FormatConfirmed(want); got != want {
				t.Errorf("classes confirmed %q, want %q", got, want)
			}
		})
	}
}

// choices are the results a step of each op may have.
var choices = map[stepOp][]string{
	opStat:    {"missing", "found"},
	opCompare: {"ok", "differs", "gone", "breaks", "bad body"},
	opTouch:   {"ok", "fails"},
	opVerify:  {"ok", "fails"},
	opRepair:  {"ok", "fails", "full", "bad body"},
	opPut:     {"ok", "full", "busy", "fails", "breaks", "bad body"},
	opFinish:  {"ok", "bad body"},
	opCopy:    {"ok", "fails"},
}

// TestPlacementExplored runs placements through every combination of
// step results and checks the rules that hold whatever happens: only
// candidates are used, in rendezvous order for the first write; the body
// is read once; copies come from a volume whose copy matched the body;
// what counts is what was stored or refreshed; and a PUT that succeeds
// has a replica, and a copy of every wanted class some candidate has
// unless a copy or refresh failed.
func TestPlacementExplored(t *testing.T) {
	configs := []struct {
		mounts  []string
		classes []string
	}{
		{[]string{"default"}, []string{"default"}},
		{[]string{"default", "ro default", "default x2"}, []string{"default"}},
		{[]string{"a", "b c", "a b"}, []string{"a", "b"}},
		{[]string{"b", "a", "c"}, []string{"a", "b"}},
	}
	runs := 0
	for _, cfg := range configs {
		var explore func(prefix []int)
		explore = func(prefix []int) {
			runs++
			var picked []int  // the choice made at each step
			var options []int // how many there were
			ms := testMounts(cfg.mounts...)
			p := newPlacement(orderedHash, ms, cfg.classes)
			steps, notes := run(t, p, func(st step) string {
				k := len(picked)
				c := 0
				if k < len(prefix) {
					c = prefix[k]
				}
				picked = append(picked, c)
				options = append(options, len(choices[st.op]))
				return choices[st.op][c]
			})
			name := fmt.Sprintf("%v wanting %v, steps %v", cfg.mounts, cfg.classes, withResults(steps, picked))
			checkPlacement(t, name, ms, cfg.classes, p, steps, picked, notes)
			for k := len(prefix); k < len(picked); k++ {
				for c := 1; c < options[k]; c++ {
					explore(append(slices.Clone(picked[:k]), c))
				}
			}
		}
		explore(nil)
	}
	t.Logf("%d placements explored", runs)
}

// withResults pairs each step with the result it was given.
func withResults(steps []string, picked []int) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		op, _, _ := strings.Cut(s, " ")
		out[i] = s + ": " + choices[opOf(op)][picked[i]]
	}
	return out
}

// checkPlacement checks one explored placement against the rules that
// hold whatever the results (see TestPlacementExplored).
func checkPlacement(t *testing.T, name string, ms []*mount, classes []string, p *placement, steps []string, picked []int, notes []string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: "+format, append([]any{name}, args...)...)
	}
	byID := map[string]*mount{}
	var cands []string
	for _, m := range ms {
		byID[m.id] = m
		if !m.readOnly && slices.ContainsFunc(classes, m.hasClass) {
			cands = append(cands, m.id)
		}
	}
	var (
		stats    []string
		read     bool                // the body has been read
		matching = map[string]bool{} // volumes whose copy matched the body
		stored   = map[string]bool{} // volumes that count
		badBody  bool
	)
	for i, s := range steps {
		f := strings.Fields(s)
		op, ids := f[0], f[1:]
		result := choices[opOf(op)][picked[i]]
		ok := result == "ok" || result == "found"
		for _, id := range ids {
			if !slices.Contains(cands, id) {
				fail("step %q uses %s, not a candidate", s, id)
			}
		}
		if op == "stat" {
			if len(stats) != i {
				fail("stat after other steps")
			}
			stats = append(stats, ids[0])
			continue
		}
		if (op == "compare" || op == "put") && read {
			fail("step %q reads the body again", s)
		}
		if op == "repair" && (i < 2 || !strings.HasPrefix(steps[i-2], "compare "+ids[0])) {
			fail("repair %s not after its compare", ids[0])
		}
		if op == "copy" && !matching[ids[0]] {
			fail("copy from %s, whose copy is not known to match the body", ids[0])
		}
		o := scriptedResults[result]
		if readsBody(opOf(op)) && o.readBody {
			read = true
		}
		badBody = badBody || readsBody(opOf(op)) && o.badBody
		if !ok {
			continue
		}
		switch op {
		case "compare", "put", "repair":
			matching[ids[0]] = true
		}
		switch op {
		case "put", "repair", "touch", "copy":
			stored[ids[len(ids)-1]] = true
		}
	}
	if !slices.Equal(stats, cands) {
		fail("stats of %v, want the candidates %v", stats, cands)
	}
	v := p.verdict()
	if badBody && v.code != 400 {
		fail("a bad body answered %d %q, want 400", v.code, v.msg)
	}
	if v.code != 200 {
		return
	}
	var holders []string
	for _, m := range p.got.holders {
		holders = append(holders, m.id)
	}
	var want []string
	for _, id := range cands {
		if stored[id] {
			want = append(want, id)
		}
	}
	slices.Sort(holders)
	if !slices.Equal(holders, want) {
		fail("counted %v, want the volumes stored or refreshed %v", holders, want)
	}
	sum := 0
	for _, id := range holders {
		sum += byID[id].replication
	}
	if p.got.replicas == 0 || p.got.replicas != sum {
		fail("200 with %d replicas counted on %v", p.got.replicas, holders)
	}
	if len(notes) > 0 {
		return
	}
	for _, c := range classes {
		has := slices.ContainsFunc(cands, func(id string) bool { return byID[id].hasClass(c) })
		if has && p.got.done[c] == 0 {
			fail("class %s has no copy, though a candidate has it and nothing failed", c)
		}
	}
}

// opOf returns the op named name.
func opOf(name string) stepOp {
	return stepOp(slices.Index(opNames[:], name))
}
