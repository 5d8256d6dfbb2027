package keepclient

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/keepproject/keep/locator"
)

// PutOptions adjust one write. Zero fields take the client's defaults.
type PutOptions struct {
	// Replicas is the number of copies wanted; 0 means Options.Replicas.
	Replicas int
	// StorageClasses each need Replicas copies; nil means
	// Options.StorageClasses.
	StorageClasses []string
	// RequestID is sent as X-Request-Id on every request of the write;
	// "" generates one.
	RequestID string
	// Hash is the block's MD5 in hex, if the caller already knows it.
	// It is trusted: servers verify it against the data.
	Hash string
}

// Attempt records one upload made by a write.
type Attempt struct {
	Service  Service
	Pass     int
	Status   int    // HTTP status; 0 when no response arrived
	Message  string // server's explanation or transport error
	Replicas int    // replicas the server reported storing
	Duration time.Duration
}

// PutResult describes a completed write.
type PutResult struct {
	// Locator is the locator a server returned, signed when the servers
	// sign; hash+size when none did.
	Locator locator.Locator
	// Replicas is the number of replicas stored. It can exceed the number
	// wanted when a server stores more copies than it was asked for, or
	// when a hedged upload's laggard finished too (see Options.NoHedge).
	Replicas int
	// Classes holds replicas confirmed per storage class, if any server
	// reported them.
	Classes map[string]int
	// Attempts lists every upload in order of completion.
	Attempts []Attempt
	// RequestID is the X-Request-Id the write used.
	RequestID string
	// Hedges is the number of extra uploads started because another
	// upload of the block lagged (see Options.NoHedge).
	Hedges int
}

// Put stores data on the wanted number of services and returns the
// server-provided locator. When fewer replicas than wanted are stored it
// returns the partial result with an *InsufficientReplicasError. Put
// returns only after every upload it started has finished.
func (c *Client) Put(ctx context.Context, data []byte, opts PutOptions) (*PutResult, error) {
	if len(data) > locator.MaxBlockSize {
		return nil, fmt.Errorf("keepclient.Put: %d bytes: %w", len(data), ErrTooLarge)
	}
	hash := opts.Hash
	if hash == "" {
		sum := md5.Sum(data)
		hash = hex.EncodeToString(sum[:])
	} else if err := locator.ParseHash(hash); err != nil {
		return nil, fmt.Errorf("keepclient.Put: %w", err)
	}
	wanted := opts.Replicas
	if wanted == 0 {
		wanted = c.opts.Replicas
	}
	if wanted < 0 {
		return nil, fmt.Errorf("keepclient.Put: %d replicas wanted", wanted)
	}
	classes := opts.StorageClasses
	if classes == nil {
		classes = c.opts.StorageClasses
	}
	res := &PutResult{
		Locator:   locator.Locator{Hash: hash, Size: int64(len(data))},
		RequestID: opts.RequestID,
	}
	if res.RequestID == "" {
		res.RequestID = newRequestID()
	}
	if len(data) == 0 {
		// Every reader can produce the empty block without asking a server.
		res.Replicas = wanted
		return res, nil
	}

	w := &write{
		c:       c,
		hash:    hash,
		data:    data,
		res:     res,
		started: make(map[int]*inflight),
		hedged:  make(map[int]bool),
		plan:    newWritePlan(hash, c.svcs.get(), wanted, classes, c.down.demote),
	}
	return w.run(ctx)
}

// write is the state of one Put, owned by the goroutine running it.
type write struct {
	c    *Client
	hash string
	data []byte
	res  *PutResult
	plan *writePlan

	started map[int]*inflight // in-flight uploads by service index
	hedged  map[int]bool      // laggards already given a hedge
	fastest time.Duration     // quickest successful upload so far
}

type uploadDone struct {
	i       int
	svc     Service
	out     outcome
	elapsed time.Duration
}

func (w *write) run(ctx context.Context) (*PutResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Each service has at most one upload in flight, so a buffer the size
	// of the service list means no upload ever blocks on sending (if a
	// refresh adds services, a sender may wait until drained; every
	// result is always read).
	results := make(chan uploadDone, len(w.plan.svcs)+1)
	delay := w.c.opts.RetryDelay
	bare := w.res.Locator.Bare() // errors never carry a signature
	for {
		for {
			if err := context.Cause(ctx); err != nil {
				w.drain(results)
				return w.res, fmt.Errorf("keepclient.Put %s: %w", bare, err)
			}
			w.startUploads(ctx, results)
			if w.plan.passOver() {
				break
			}
			hedge, stop := w.hedgeTimer()
			select {
			case d := <-results:
				w.finish(d)
			case <-hedge:
				w.hedge(ctx, results)
			case <-ctx.Done():
				stop()
				w.drain(results)
				return w.res, fmt.Errorf("keepclient.Put %s: %w", bare, context.Cause(ctx))
			}
			stop()
		}
		if w.plan.done() {
			// Uploads still in flight are hedged laggards, or remain
			// because a server stored more replicas than asked: stop them
			// and count honestly whatever they stored anyway.
			cancel()
			w.drain(results)
			return w.res, nil
		}
		// Another pass is worth it when some service gave a retryable
		// answer, or when a refreshed service list may add services.
		refresh := w.c.opts.Refresh != nil
		if w.plan.pass >= w.c.opts.MaxPasses || !(w.plan.retryable() || refresh) {
			return w.res, w.insufficient()
		}
		// A busy server's Retry-After is a floor on the pause.
		pause := max(time.Millisecond+mrand.N(delay), w.plan.retryAfter)
		delay = min(2*delay, 10*w.c.opts.RetryDelay)
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return w.res, fmt.Errorf("keepclient.Put %s: %w", bare, context.Cause(ctx))
		}
		// Service indexes may change with a refresh: hedging starts afresh.
		clear(w.hedged)
		if refresh {
			w.c.refresh(ctx)
			w.plan.setServices(w.hash, w.c.svcs.get())
		}
		if !w.plan.newPass() {
			return w.res, w.insufficient()
		}
	}
}

// startUploads starts every upload the plan allows now.
func (w *write) startUploads(ctx context.Context, results chan<- uploadDone) {
	for {
		i, ok := w.plan.next()
		if !ok {
			return
		}
		w.launch(ctx, i, w.request(i), results)
	}
}

// request describes an upload to service i as the plan stands now.
func (w *write) request(i int) uploadRequest {
	return uploadRequest{
		svc:       w.plan.svcs[i],
		hash:      w.hash,
		data:      w.data,
		requestID: w.res.RequestID,
		desired:   w.plan.need(),
		classes:   w.plan.pendingClasses(),
	}
}

// inflight is what the writer knows of an upload in progress; the
// upload's goroutine and the transport update it.
type inflight struct {
	begun atomic.Int64 // UnixNano when the request started, 0 while it waits for a slot
	sent  atomic.Int64 // body bytes sent
}

func (w *write) launch(ctx context.Context, i int, u uploadRequest, results chan<- uploadDone) {
	f := &inflight{}
	w.started[i] = f
	u.progress = f
	go func() {
		out := w.c.upload(ctx, u)
		var elapsed time.Duration
		if b := f.begun.Load(); b != 0 {
			elapsed = time.Since(time.Unix(0, b))
		}
		results <- uploadDone{i: i, svc: u.svc, out: out, elapsed: elapsed}
	}()
}

// hedgeTimer returns a channel that fires when the next in-flight upload
// becomes a laggard (see lagsAt). The channel is nil when hedging is off,
// in proxy mode (one upload at a time), when a hedge is already running
// (at most one upload beyond what is needed), or when nothing is in
// flight.
func (w *write) hedgeTimer() (<-chan time.Time, func()) {
	if w.c.opts.NoHedge || w.plan.oneAtATime || w.plan.need() == 0 || w.plan.inflight > w.plan.need() {
		return nil, func() {}
	}
	var first time.Time
	waiting := false
	for i := range w.started {
		t, ok, _ := w.lagsAt(i)
		if ok && (first.IsZero() || t.Before(first)) {
			first = t
		}
		waiting = waiting || !w.hedged[i]
	}
	if first.IsZero() {
		if !waiting {
			return nil, func() {}
		}
		// Nothing can lag yet, but an upload may get its request slot,
		// or another write may find one of these services slow: look
		// again in a while.
		first = time.Now().Add(w.c.opts.HedgeMin)
	}
	t := time.NewTimer(time.Until(first))
	return t.C, func() { t.Stop() }
}

// lagsAt reports when the upload to service i counts as lagging, if it
// can, and whether that lag is measured (against this block's fastest
// upload) rather than known (the client already found the service slow
// or down). An upload never lags while it waits for a request slot, once
// it has been hedged, or once it has sent half its block: it will
// probably finish before a new upload would, and an extra replica helps
// nobody.
func (w *write) lagsAt(i int) (at time.Time, ok, measured bool) {
	f := w.started[i]
	begun := f.begun.Load()
	if w.hedged[i] || begun == 0 || 2*f.sent.Load() >= int64(len(w.data)) {
		return time.Time{}, false, false
	}
	start := time.Unix(0, begun)
	if w.c.down.isDown(w.plan.svcs[i].URL()) {
		return start, true, false
	}
	if w.fastest == 0 {
		return time.Time{}, false, false
	}
	o := w.c.opts
	return start.Add(max(o.HedgeMin, time.Duration(o.HedgeFactor*float64(w.fastest)))), true, true
}

// hedge starts an upload to the next service in probe order for a
// laggard. Whichever finishes first counts; once enough replicas are
// stored the rest are cancelled, and any extra replica is counted
// honestly. Only a lag measured in this write marks the service slow for
// other writes, so the mark expires once the service keeps up again.
func (w *write) hedge(ctx context.Context, results chan<- uploadDone) {
	now := time.Now()
	for i := range w.started {
		if w.plan.inflight > w.plan.need() {
			return // one extra upload at a time
		}
		t, ok, measured := w.lagsAt(i)
		if !ok || now.Before(t) {
			continue
		}
		w.hedged[i] = true
		if measured {
			w.c.down.noteSlow(w.plan.svcs[i].URL())
		}
		j, ok := w.plan.nextExtra()
		if !ok {
			return
		}
		w.res.Hedges++
		w.launch(ctx, j, w.request(j), results)
	}
}

// finish folds one upload's outcome into the plan and the result.
func (w *write) finish(d uploadDone) {
	w.plan.record(d.i, d.out)
	delete(w.started, d.i)
	if d.out.ok() && (w.fastest == 0 || d.elapsed < w.fastest) {
		w.fastest = d.elapsed
	}
	w.res.Attempts = append(w.res.Attempts, Attempt{
		Service:  d.svc,
		Pass:     w.plan.pass,
		Status:   d.out.status,
		Message:  d.out.msg,
		Replicas: d.out.replicas,
		Duration: d.elapsed,
	})
	if !d.out.ok() {
		return
	}
	w.res.Replicas = w.plan.stored
	if counts, ok := parseConfirmed(d.out.classes); ok {
		if w.res.Classes == nil {
			w.res.Classes = make(map[string]int)
		}
		for k, n := range counts {
			w.res.Classes[k] += n
		}
	}
	if w.res.Locator.Hints == nil {
		if l, err := locator.Parse(d.out.locator); err == nil && l.Hash == w.hash && l.Size == int64(len(w.data)) {
			w.res.Locator = l
		} else {
			w.c.log.Warn("server returned an unusable locator", "service", d.svc.String(), "locator", d.out.locator)
		}
	}
}

// drain waits for every upload still in flight.
func (w *write) drain(results <-chan uploadDone) {
	for w.plan.inflight > 0 {
		w.finish(<-results)
	}
}

func (w *write) insufficient() error {
	e := &InsufficientReplicasError{
		Locator:  locator.Locator{Hash: w.hash, Size: int64(len(w.data))}.String(),
		Wanted:   w.plan.wanted,
		Stored:   w.plan.stored,
		Passes:   w.plan.pass,
		Writable: len(w.plan.svcs),
	}
	if len(w.plan.classes) > 0 {
		e.Classes = make(map[string]int)
		for _, c := range w.plan.classes {
			e.Classes[c] = w.plan.confirmed[c]
		}
	}
	for i, s := range w.plan.svcs {
		if !w.plan.tried[i] {
			continue
		}
		o := w.plan.last[i]
		e.Services = append(e.Services, ServiceResult{
			Service:   s,
			Status:    o.status,
			Message:   o.msg,
			Retryable: !o.ok() && o.retryable(),
			Replicas:  o.replicas,
		})
	}
	return e
}

// newRequestID returns an id in the form keepstore generates: "req-"
// and 20 base-36 characters.
func newRequestID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [20]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%36]
	}
	return "req-" + string(b[:])
}
