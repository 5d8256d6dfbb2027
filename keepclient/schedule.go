package keepclient

import (
	"strconv"
	"strings"
	"time"
)

// svcState is what one write knows about one service.
type svcState uint8

const (
	untried    svcState = iota // eligible in this pass
	inFlight                   // an upload is running
	succeeded                  // stored the block; never written again
	failed                     // non-retryable answer; never written again
	retryLater                 // retryable answer; eligible in the next pass
)

// outcome is the result of one upload, as the scheduler sees it.
type outcome struct {
	status     int           // HTTP status, 0 when there was no response
	msg        string        // short reason: response text or transport error
	replicas   int           // replicas the server reports (on 200)
	classes    string        // raw X-Keep-Storage-Classes-Confirmed (on 200)
	hasClasses bool          // whether that header was present
	locator    string        // response body (on 200)
	retryAfter time.Duration // from a 503 with Retry-After
}

func (o outcome) ok() bool { return o.status == 200 }

// retryable reports whether a failed upload may be tried again in a later
// pass: network errors and timeouts, 408, 429, and every 5xx except 503
// ("full", unless it carries Retry-After, which means busy) and 507.
func (o outcome) retryable() bool {
	switch {
	case o.status == 0, o.status == 408, o.status == 429:
		return true
	case o.status == 503:
		return o.retryAfter > 0
	case o.status == 507:
		return false
	default:
		return o.status >= 500
	}
}

// writePlan decides, from what has happened so far in one write, which
// service to upload to next. It does no I/O and is not safe for
// concurrent use: the goroutine running the write owns it.
type writePlan struct {
	svcs  []Service // writable services in probe order
	state []svcState
	last  []outcome // most recent outcome per service
	tried []bool    // whether the service was ever sent an upload

	wanted     int
	stored     int
	classes    []string       // classes asked for, in order
	confirmed  map[string]int // replicas confirmed per class
	tracking   bool           // classes asked for and every server confirms them
	oneAtATime bool           // some writable service is not a disk: proxy mode
	inflight   int
	pass       int
	retryAfter time.Duration // longest Retry-After seen this pass

	// demote, if set, reorders the probe order (moving services known to
	// be down to the end).
	demote func([]Service) []Service
}

func newWritePlan(hash string, svcs []Service, wanted int, classes []string, demote func([]Service) []Service) *writePlan {
	p := &writePlan{
		wanted:    wanted,
		classes:   classes,
		confirmed: make(map[string]int),
		tracking:  len(classes) > 0,
		pass:      1,
		demote:    demote,
	}
	p.setServices(hash, svcs)
	return p
}

// setServices replaces the service list, keeping what is known about
// services that remain (matched by URL). Only call it between passes.
func (p *writePlan) setServices(hash string, svcs []Service) {
	old := make(map[string]int, len(p.svcs))
	for i, s := range p.svcs {
		old[s.URL()] = i
	}
	var writable []Service
	for _, s := range svcs {
		if !s.ReadOnly && !s.IsGateway() {
			writable = append(writable, s)
		}
	}
	ordered := ProbeOrder(hash, writable)
	if p.demote != nil {
		ordered = p.demote(ordered)
	}
	state := make([]svcState, len(ordered))
	last := make([]outcome, len(ordered))
	tried := make([]bool, len(ordered))
	p.oneAtATime = false
	for i, s := range ordered {
		if j, ok := old[s.URL()]; ok {
			state[i], last[i], tried[i] = p.state[j], p.last[j], p.tried[j]
		}
		if !s.IsDisk() {
			p.oneAtATime = true
		}
	}
	p.svcs, p.state, p.last, p.tried = ordered, state, last, tried
}

// need is the number of replicas still missing: for class tracking, the
// smallest positive shortfall of any class, so that concurrent uploads
// never over-replicate any class.
func (p *writePlan) need() int {
	if !p.tracking {
		return max(p.wanted-p.stored, 0)
	}
	n := 0
	for _, c := range p.classes {
		if short := p.wanted - p.confirmed[c]; short > 0 && (n == 0 || short < n) {
			n = short
		}
	}
	return n
}

// done reports whether the write has all the replicas it wants.
func (p *writePlan) done() bool { return p.need() == 0 }

// pendingClasses returns the classes to ask the next upload for.
func (p *writePlan) pendingClasses() []string {
	if !p.tracking {
		return p.classes
	}
	var out []string
	for _, c := range p.classes {
		if p.confirmed[c] < p.wanted {
			out = append(out, c)
		}
	}
	return out
}

// next returns the index of the service to upload to now, and marks it
// in flight, or reports false when no upload should start: the write is
// done, in-flight uploads already cover what is missing, or every
// service has had its turn this pass.
func (p *writePlan) next() (int, bool) {
	need := p.need()
	if need == 0 {
		return 0, false
	}
	limit := need
	if p.oneAtATime {
		limit = 1
	}
	if p.inflight >= limit {
		return 0, false
	}
	return p.startFirstUntried()
}

// startFirstUntried marks the first untried service in flight.
func (p *writePlan) startFirstUntried() (int, bool) {
	for i, st := range p.state {
		if st == untried {
			p.state[i] = inFlight
			p.tried[i] = true
			p.inflight++
			return i, true
		}
	}
	return 0, false
}

// nextExtra returns the next untried service regardless of how many
// uploads are in flight, for a hedge against a lagging upload, and marks
// it in flight. It reports false when the write is done or no service is
// left this pass.
func (p *writePlan) nextExtra() (int, bool) {
	if p.need() == 0 {
		return 0, false
	}
	return p.startFirstUntried()
}

// passOver reports whether the current pass has nothing left to do.
func (p *writePlan) passOver() bool {
	if p.done() {
		return true
	}
	if p.inflight > 0 {
		return false
	}
	for _, st := range p.state {
		if st == untried {
			return false
		}
	}
	return true
}

// record notes the outcome of the upload to service i.
func (p *writePlan) record(i int, o outcome) {
	p.inflight--
	p.last[i] = o
	if !o.ok() {
		if o.retryable() {
			p.state[i] = retryLater
			p.retryAfter = max(p.retryAfter, o.retryAfter)
		} else {
			p.state[i] = failed
		}
		return
	}
	p.state[i] = succeeded
	p.stored += o.replicas
	counts, valid := parseConfirmed(o.classes)
	if !o.hasClasses || !valid {
		// A server that does not confirm classes turns tracking off
		// for the rest of the write; replicas are counted instead.
		p.tracking = false
		return
	}
	for c, n := range counts {
		p.confirmed[c] += n
	}
}

// retryable reports whether some service gave a retryable answer.
func (p *writePlan) retryable() bool {
	for _, st := range p.state {
		if st == retryLater {
			return true
		}
	}
	return false
}

// newPass starts another pass over the services that gave retryable
// answers and any not tried yet (added by a refresh), and reports false
// when there are none.
func (p *writePlan) newPass() bool {
	any := false
	for i, st := range p.state {
		switch st {
		case retryLater:
			p.state[i] = untried
			any = true
		case untried:
			any = true
		}
	}
	if any {
		p.pass++
		p.retryAfter = 0
	}
	return any
}

// parseConfirmed parses "class=n, class=n". An empty or malformed header
// is reported as invalid.
func parseConfirmed(h string) (map[string]int, bool) {
	if strings.TrimSpace(h) == "" {
		return nil, false
	}
	out := make(map[string]int)
	for _, part := range strings.Split(h, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " =") {
			return nil, false
		}
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if err != nil || n < 0 {
			return nil, false
		}
		out[name] += n
	}
	return out, true
}
