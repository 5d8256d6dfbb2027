package keepclient

import (
	"net/http"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// readOrder lists the services to read loc from: those its +K hints name
// (a service by uuid, or a remote cluster's service by cluster id), in
// hint order, then every readable service in probe order, with services
// known to be down or slow moved last by demote. A hint naming a cluster
// not in remotes adds nothing: the client sends its token only to
// services it was configured with.
func readOrder(loc locator.Locator, all []Service, remotes map[string]Service, demote func([]Service) []Service) []Service {
	seen := make(map[string]bool)
	var out []Service
	add := func(s Service) {
		if !seen[s.URL()] {
			seen[s.URL()] = true
			out = append(out, s)
		}
	}
	for _, h := range loc.HintsWithPrefix("K@") {
		if r, ok := remotes[h]; ok && len(h) == 5 {
			add(r)
			continue
		}
		for _, s := range all {
			if s.UUID == h {
				add(s)
			}
		}
	}
	var readable []Service
	for _, s := range all {
		if !s.IsGateway() {
			readable = append(readable, s)
		}
	}
	ordered := ProbeOrder(loc.Hash, readable)
	if demote != nil {
		ordered = demote(ordered)
	}
	for _, s := range ordered {
		add(s)
	}
	return out
}

// readRetryable reports whether a read that got status may be tried
// again on the same service in a later pass. Any 503 is worth another
// look for a read: "full" does not apply.
func readRetryable(status int) bool {
	return protocol.Retryable(status, status == http.StatusServiceUnavailable)
}

// readState is what one read knows about one service.
type readState uint8

const (
	readPending readState = iota // to be asked in this pass
	readLater                    // failed retryably; asked again next pass
	readFinal                    // failed for good
)

// readPlan decides which service a read asks next, pass by pass, and
// whether to make another pass and after what pause. Like writePlan it
// does no I/O and reads no clock; the read owns it.
type readPlan struct {
	svcs   []Service
	state  []readState
	last   []ServiceResult
	asked  []int // the pass in which each service was last asked; 0 for never
	pass   int
	passes passRule
}

func newReadPlan(svcs []Service, passes passRule) *readPlan {
	p := &readPlan{pass: 1, passes: passes}
	p.add(svcs)
	return p
}

// add appends the services not known yet (after a refresh), to be asked
// in the next pass.
func (p *readPlan) add(svcs []Service) {
	known := make(map[string]bool, len(p.svcs))
	for _, s := range p.svcs {
		known[s.URL()] = true
	}
	for _, s := range svcs {
		if !known[s.URL()] {
			known[s.URL()] = true
			p.svcs = append(p.svcs, s)
			p.state = append(p.state, readPending)
			p.last = append(p.last, ServiceResult{})
			p.asked = append(p.asked, 0)
		}
	}
}

// next returns the next service to ask in this pass, in order.
func (p *readPlan) next() (int, bool) {
	for i, st := range p.state {
		if st == readPending && p.asked[i] != p.pass {
			return i, true
		}
	}
	return 0, false
}

// record notes a failed attempt on service i.
func (p *readPlan) record(i int, r ServiceResult) {
	p.last[i], p.asked[i] = r, p.pass
	if r.Retryable {
		p.state[i] = readLater
	} else {
		p.state[i] = readFinal
	}
}

// retryable reports whether some service is worth asking again.
func (p *readPlan) retryable() bool {
	for _, st := range p.state {
		if st == readLater {
			return true
		}
	}
	return false
}

// again decides, once a pass has failed on every service it asked,
// whether the read makes another and how long it pauses first: while
// passes remain (passRule.max), when some service failed retryably or a
// refreshed service list may add services. Reads take no Retry-After:
// the pause is the backoff's next. Then, after any refresh, newPass
// starts the pass.
func (p *readPlan) again() (pause time.Duration, ok bool) {
	if !p.passes.another(p.pass, p.retryable()) {
		return 0, false
	}
	return p.passes.wait.next(0), true
}

// newPass starts another pass over the services that failed retryably
// and those added since, and reports false when there are none.
func (p *readPlan) newPass() bool {
	any := false
	for i, st := range p.state {
		if st == readLater {
			p.state[i] = readPending
		}
		any = any || p.state[i] == readPending
	}
	if any {
		p.pass++
	}
	return any
}

// err is the read's error once every pass has failed: a *NotFoundError
// when every service answered 404, else a *ReadError.
func (p *readPlan) err(loc locator.Locator) error {
	results := make([]ServiceResult, 0, len(p.svcs))
	notFound := 0
	for i := range p.svcs {
		if p.asked[i] == 0 {
			continue
		}
		results = append(results, p.last[i])
		if p.last[i].Status == http.StatusNotFound {
			notFound++
		}
	}
	if notFound > 0 && notFound == len(p.svcs) {
		return &NotFoundError{Locator: loc.Bare().String(), Services: len(p.svcs)}
	}
	return &ReadError{Locator: loc.Bare().String(), Passes: p.pass, Services: results}
}
