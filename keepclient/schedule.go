package keepclient

import (
	"maps"
	"time"

	"github.com/keepproject/keep/internal/protocol"
)

// svcState is what one write knows about one service.
type svcState uint8

const (
	untried    svcState = iota // eligible in this pass
	inFlight                   // an upload is running
	succeeded                  // stored the block; never written again
	failed                     // non-retryable answer; never written again
	retryLater                 // retryable answer, or replaced; eligible in the next pass
)

// outcome is the result of one upload, as the plan sees it. The counts
// in it are what the server claimed, each within [0, protocol.MaxReplicas]
// (see parseUpload); what they are worth to the write is the plan's to
// decide (writePlan.record).
type outcome struct {
	status     int            // HTTP status, 0 when there was no response
	msg        string         // short reason: response text or transport error
	replicas   int            // X-Keep-Replicas-Stored (on 200; missing or malformed: 1)
	classes    map[string]int // replicas confirmed per class; nil when not confirmed
	volumes    map[string]int // replicas per volume holding the block; nil when not named
	counted    int            // replicas the write counted for it (set by writePlan.record)
	locator    string         // usable locator from the response body (on 200), or ""
	retryAfter time.Duration  // from a 503 with a usable Retry-After
	replaced   bool           // abandoned for lag before its body was sent
	final      bool           // a transport error no retry can cure (an untrusted certificate)
	elapsed    time.Duration  // from the request's start to its answer
}

func (o outcome) ok() bool { return o.status == 200 }

// worth is the replicas a successful answer would count for in a write
// that had counted none of its volumes: what the service stores for one
// upload, which later writes expect of it (see writePlan.next).
func (o outcome) worth() int {
	if o.volumes == nil {
		return o.replicas
	}
	sum := 0
	for _, n := range o.volumes {
		sum = min(sum+n, protocol.MaxReplicas)
	}
	return min(sum, o.replicas)
}

// retryable reports whether a failed upload may be tried again in a later
// pass (protocol.Retryable); an upload replaced for lag always may.
func (o outcome) retryable() bool {
	return o.replaced || !o.final && protocol.Retryable(o.status, o.retryAfter > 0)
}

// lagRule says when an in-flight upload counts as lagging.
type lagRule struct {
	// factor: an upload lags once it has run this many times as long as
	// the block's fastest successful upload...
	factor float64
	// least: ...and at least this long. It is also how often uploads that
	// cannot be judged yet are looked at again.
	least time.Duration
}

// progress is what the writer saw of one in-flight upload at one moment.
type progress struct {
	begun     time.Time // when the request started; zero while it waits for a request slot
	sent      int64     // body bytes handed to the transport
	complete  bool      // the whole body has been handed over, or the request has ended: never replaced
	knownSlow bool      // the client found the service down or slow recently
}

// replacement is the plan's decision to abandon an in-flight upload for
// lag and start the next service in its place.
type replacement struct {
	i        int  // service index
	measured bool // lag measured against this block's fastest upload, not known beforehand
}

// writePlan decides, from what has happened so far in one write, which
// service to upload to next, with how many replicas asked of it, which
// lagging upload to replace, and whether to make another pass and after
// what pause. It does no I/O and reads no clock: time, progress, what
// earlier writes learnt of each service and the randomness of the pauses
// are passed in. It is not safe for concurrent use: the goroutine running the
// write owns it.
//
// Answers are untrusted and may count for more than their upload asked (a
// volume with Replication 2), or for nothing (a volume already counted,
// which another server shares). So its invariants are these: the
// replicas counted never exceed the replicas wanted (per class, when
// classes are tracked); an upload starts only while the replicas counted
// plus those asked of uploads in flight, its own included, stay within
// what is wanted; and so, since every upload in flight asks for at least
// one and every upload that counted counted at least one, the uploads in
// flight plus the uploads that counted never exceed the replicas wanted
// (without classes). Beyond those, only uploads that counted for nothing
// store the block: to a volume already counted (the same object again),
// or still in flight when other answers counted for more than asked, and
// so turned out not to be needed. A replaced upload asked for something
// but can store nothing: its body was never sent whole.
type writePlan struct {
	size   int64     // block size
	svcs   []Service // writable services in probe order
	state  []svcState
	last   []outcome // most recent outcome per service
	tried  []bool    // whether the service was ever sent an upload
	budget []int     // replicas asked of the service's in-flight upload
	expect []int     // replicas the service's last successful upload counted for, in earlier writes (0: unknown)

	wanted     int
	stored     int
	classes    []string       // classes asked for, in order
	confirmed  map[string]int // replicas confirmed per class
	volumes    map[string]int // volumes successful answers named, with the most replicas each was said to hold
	unnamed    bool           // some successful answer named no volumes
	tracking   bool           // classes asked for and every server confirms them
	oneAtATime bool           // some writable service is not a disk: proxy mode
	inflight   int            // uploads in flight
	asked      int            // replicas asked of uploads in flight
	pass       int
	retryAfter time.Duration // longest Retry-After seen this pass
	fastest    time.Duration // quickest successful upload of the block
	replaced   int           // uploads replaced for lag
	lag        lagRule
	passes     passRule

	// history is what earlier writes learnt of the services.
	history serviceHistory
}

// serviceHistory is what a plan may know of services from earlier
// writes. Either func may be nil.
type serviceHistory struct {
	// demote reorders the probe order, moving services known to be down
	// to the end.
	demote func([]Service) []Service
	// expect returns the replicas the service at url counted for in its
	// last successful upload, or 0 when unknown.
	expect func(url string) int
}

func newWritePlan(hash string, size int64, svcs []Service, wanted int, classes []string, lag lagRule, passes passRule, history serviceHistory) *writePlan {
	p := &writePlan{
		size:      size,
		wanted:    wanted,
		classes:   classes,
		confirmed: make(map[string]int),
		volumes:   make(map[string]int),
		tracking:  len(classes) > 0,
		pass:      1,
		lag:       lag,
		passes:    passes,
		history:   history,
	}
	p.setServices(hash, svcs)
	return p
}

// setServices replaces the service list, keeping what is known about
// services that remain (matched by URL). Only call it between passes,
// with nothing in flight.
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
	if p.history.demote != nil {
		ordered = p.history.demote(ordered)
	}
	n := len(ordered)
	state, last, tried, expect := make([]svcState, n), make([]outcome, n), make([]bool, n), make([]int, n)
	p.oneAtATime = false
	for i, s := range ordered {
		if j, ok := old[s.URL()]; ok {
			state[i], last[i], tried[i] = p.state[j], p.last[j], p.tried[j]
		}
		if !s.IsDisk() {
			p.oneAtATime = true
		}
		if p.history.expect != nil {
			expect[i] = p.history.expect(s.URL())
		}
	}
	p.svcs, p.state, p.last, p.tried, p.budget, p.expect = ordered, state, last, tried, make([]int, n), expect
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

// next returns the index of the service to upload to now and the
// replicas asked of it: the share of what is missing that the upload is
// expected to fill, so that no other upload starts for it. It marks the
// service in flight; or it reports false when no upload should start:
// the write is done, in-flight uploads already cover what is missing, or
// every service has had its turn this pass. A disk service is asked for
// what its last successful upload counted for (one when unknown), so
// that about N replicas' worth of them run at once and a service known
// to store two replicas takes the place of two; in proxy mode one upload
// at a time is asked for everything missing. What is asked is the plan's
// own reckoning: every upload tells the server the whole N wanted.
func (p *writePlan) next() (i, ask int, ok bool) {
	free := p.need() - p.asked
	if free <= 0 || (p.oneAtATime && p.inflight > 0) {
		return 0, 0, false
	}
	for i, st := range p.state {
		if st != untried {
			continue
		}
		ask = free
		if !p.oneAtATime {
			ask = min(max(p.expect[i], 1), free)
		}
		p.state[i] = inFlight
		p.tried[i] = true
		p.budget[i] = ask
		p.inflight++
		p.asked += ask
		return i, ask, true
	}
	return 0, 0, false
}

// untried returns how many services have not had their turn this pass.
func (p *writePlan) untried() int {
	n := 0
	for _, st := range p.state {
		if st == untried {
			n++
		}
	}
	return n
}

// passOver reports whether the current pass has nothing left to do.
func (p *writePlan) passOver() bool {
	return p.done() || (p.inflight == 0 && p.untried() == 0)
}

// settle ends the in-flight upload to service i.
func (p *writePlan) settle(i int) {
	p.inflight--
	p.asked -= p.budget[i]
	p.budget[i] = 0
}

// record notes the outcome of the upload to service i and returns the
// replicas it counted for. An answer naming its volumes counts for the
// replicas of the volumes no earlier answer of the write named, so that
// two servers sharing a volume count once; one naming none counts for its
// X-Keep-Replicas-Stored. Either way it counts for no more than its
// X-Keep-Replicas-Stored and what is still missing, so never more than
// wanted in all. A success that counts for nothing leaves the service
// done with, and the next one takes its turn.
func (p *writePlan) record(i int, o outcome) int {
	p.settle(i)
	if !o.ok() {
		p.last[i] = o
		if o.retryable() {
			p.state[i] = retryLater
			p.retryAfter = max(p.retryAfter, o.retryAfter)
		} else {
			p.state[i] = failed
		}
		return 0
	}
	p.state[i] = succeeded
	if p.fastest == 0 || o.elapsed < p.fastest {
		p.fastest = o.elapsed
	}

	// fresh: the replicas on volumes not counted before; old: those on
	// volumes already counted, which cannot count again.
	fresh, old := o.replicas, 0
	if o.volumes == nil {
		p.unnamed = true
	} else {
		fresh = 0
		for v, n := range o.volumes {
			prev, seen := p.volumes[v]
			if seen {
				old = min(old+n, protocol.MaxReplicas)
			} else {
				fresh = min(fresh+n, protocol.MaxReplicas)
			}
			p.volumes[v] = max(prev, n)
		}
	}
	// avail: the replicas this answer adds, whatever is missing.
	avail := min(fresh, o.replicas)
	o.counted = max(min(avail, p.wanted-p.stored), 0)
	p.stored += o.counted
	p.last[i] = o

	if o.classes == nil {
		// A server that does not confirm classes turns tracking off
		// for the rest of the write; replicas are counted instead.
		p.tracking = false
		return o.counted
	}
	for c, n := range o.classes {
		// As many as old of the class's copies may be on volumes
		// already counted, and no class has more copies than the
		// answer adds.
		n = min(max(n-old, 0), avail)
		p.confirmed[c] += max(min(n, p.wanted-p.confirmed[c]), 0)
	}
	return o.counted
}

// stores returns the volumes the write's successful answers named, with
// the replicas each holds, or nil unless every successful answer named
// its volumes (an answer naming none says nothing of where its copies
// are).
func (p *writePlan) stores() map[string]int {
	if p.unnamed || len(p.volumes) == 0 {
		return nil
	}
	return maps.Clone(p.volumes)
}

// lagging returns the in-flight uploads to replace at now, given each
// one's progress, and when to look again (zero: only when an upload
// ends). An upload lags when the client already knows its service is
// slow or down, or when it has run max(least, factor × the block's
// fastest successful upload) and, judging by the rate it has sent at so
// far, would take longer to finish than a fresh upload to another
// service. An upload that has sent its whole body, or that waits for a
// request slot, never lags; and nothing is replaced without an untried
// service to take its place.
func (p *writePlan) lagging(now time.Time, prog func(i int) progress) (out []replacement, wake time.Time) {
	spare := p.untried()
	later := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	recheck := now.Add(p.lag.least)
	for i, st := range p.state {
		if st != inFlight {
			continue
		}
		pr := prog(i)
		if pr.complete {
			continue
		}
		if pr.begun.IsZero() || (!pr.knownSlow && p.fastest == 0) {
			// Not judged yet: it may get its slot, an upload of the block
			// may finish, or another write may find the service slow.
			later(recheck)
			continue
		}
		deadline := pr.begun
		if !pr.knownSlow {
			deadline = pr.begun.Add(max(p.lag.least, time.Duration(p.lag.factor*float64(p.fastest))))
		}
		if now.Before(deadline) {
			later(deadline)
			continue
		}
		if p.fastest > 0 && pr.sent > 0 {
			elapsed := now.Sub(pr.begun)
			left := time.Duration(float64(elapsed) * float64(p.size-pr.sent) / float64(pr.sent))
			if left <= p.fastest {
				later(recheck) // slow start, but finishing faster than a fresh upload would
				continue
			}
		}
		if spare == 0 {
			continue // nothing to replace it with until the next pass
		}
		spare--
		out = append(out, replacement{i: i, measured: !pr.knownSlow})
	}
	return out, wake
}

// replace abandons the in-flight upload to service i for lag: it counts
// as a retryable failure of the service in this pass. Call it only once
// the upload can no longer complete its body.
func (p *writePlan) replace(i int, why string) {
	p.settle(i)
	p.state[i] = retryLater
	p.last[i] = outcome{msg: why, replaced: true}
	p.replaced++
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

// again decides, once a pass is over, whether the write makes another
// and how long it pauses first. It does not when the write is done or
// has made its last pass (passRule.max); otherwise it does when some
// service gave a retryable answer (an upload replaced for lag included),
// or when a refreshed service list may add services. The pause is the
// backoff's next, and at least the longest Retry-After a busy server
// gave in this pass. Then, after any refresh, newPass starts the pass.
func (p *writePlan) again() (pause time.Duration, ok bool) {
	if p.done() || !p.passes.another(p.pass, p.retryable()) {
		return 0, false
	}
	return p.passes.wait.next(p.retryAfter), true
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
