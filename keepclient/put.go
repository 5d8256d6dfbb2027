package keepclient

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"sync/atomic"
	"time"

	"github.com/keepproject/keep/internal/protocol"
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
	// Progress, if set, is called as the write advances with the number
	// of the block's bytes newly sent, counted as the average over the
	// replicas wanted, so that the calls add up to the block's size when
	// the write succeeds. It may be called from several goroutines.
	Progress func(n int)
}

// Attempt records one upload made by a write.
type Attempt struct {
	Service Service
	Pass    int
	Status  int    // HTTP status; 0 when no response arrived
	Message string // server's explanation or transport error
	// Replicas is what the write counted the upload for: its answer's
	// replicas on volumes no earlier answer named (all of them when it
	// named none), within what was still missing. An upload to a volume
	// already counted counts for 0.
	Replicas int
	Duration time.Duration
	// Replaced reports that the upload was abandoned because it lagged,
	// before its body was sent whole (so the service cannot have stored
	// it), and the next service in probe order was started in its place.
	Replaced bool
}

// PutResult describes a completed write.
type PutResult struct {
	// Locator is the locator a server returned, signed when the servers
	// sign; hash+size when none did.
	Locator locator.Locator
	// Replicas is the number of replicas stored, counting each volume
	// once (when servers name their volumes) and never more than wanted.
	Replicas int
	// Classes holds replicas confirmed per storage class, if any server
	// reported them.
	Classes map[string]int
	// Volumes holds the volumes that hold the block, by uuid, with the
	// replicas each holds, as the servers named them in
	// X-Keep-Volumes-Stored; nil unless every server that stored the
	// block named its volumes. A proxy passes it on to its client.
	Volumes map[string]int
	// Attempts lists every upload in order of completion.
	Attempts []Attempt
	// RequestID is the X-Request-Id the write used.
	RequestID string
	// Replaced is the number of uploads abandoned for lag (see
	// Attempt.Replaced and Options.LagFactor).
	Replaced int
}

// Put stores data on the wanted number of services and returns the
// server-provided locator. When fewer replicas than wanted are stored it
// returns the partial result with an *InsufficientReplicasError. Put
// returns only after every upload it started has finished.
func (c *Client) Put(ctx context.Context, data []byte, opts PutOptions) (*PutResult, error) {
	if len(data) > locator.MaxBlockSize {
		return nil, fmt.Errorf("writing a block of %d bytes: %w", len(data), ErrTooLarge)
	}
	hash := opts.Hash
	if hash == "" {
		sum := md5.Sum(data)
		hash = hex.EncodeToString(sum[:])
	}
	return c.put(ctx, &blockSource{data: data}, hash, opts)
}

// PutFile is Put for the block that is the size bytes of f from off,
// which opts.Hash must give. The block is never held in memory: each
// upload reads it from f again, over plain HTTP straight from the file
// to the socket (sendfile), which saves a copy of every byte sent and the
// memory of a block buffer. f must not change until PutFile returns: a
// server receiving other bytes than those hashed refuses them.
func (c *Client) PutFile(ctx context.Context, f *os.File, off int64, size int, opts PutOptions) (*PutResult, error) {
	if size > locator.MaxBlockSize {
		return nil, fmt.Errorf("writing a block of %d bytes: %w", size, ErrTooLarge)
	}
	if opts.Hash == "" {
		return nil, errors.New("writing a block from a file: no hash given")
	}
	return c.put(ctx, &blockSource{file: f, off: off, size: size}, opts.Hash, opts)
}

func (c *Client) put(ctx context.Context, src *blockSource, hash string, opts PutOptions) (*PutResult, error) {
	if err := locator.ParseHash(hash); err != nil {
		return nil, fmt.Errorf("writing a block: %w", err)
	}
	wanted := opts.Replicas
	if wanted == 0 {
		wanted = c.opts.Replicas
	}
	if wanted < 0 {
		return nil, fmt.Errorf("writing a block: %d replicas wanted", wanted)
	}
	classes := opts.StorageClasses
	if classes == nil {
		classes = c.opts.StorageClasses
	}
	res := &PutResult{
		Locator:   locator.Locator{Hash: hash, Size: int64(src.len())},
		RequestID: opts.RequestID,
	}
	if res.RequestID == "" {
		res.RequestID = protocol.NewRequestID()
	}
	if src.len() == 0 {
		// Every reader can produce the empty block without asking a server.
		res.Replicas = wanted
		return res, nil
	}

	var prog *sendProgress
	if opts.Progress != nil {
		prog = &sendProgress{size: int64(src.len()), per: int64(max(wanted, 1)), report: opts.Progress}
	}
	w := &write{
		prog:    prog,
		c:       c,
		hash:    hash,
		src:     src,
		res:     res,
		running: make(map[int]*upload),
		plan: newWritePlan(hash, int64(src.len()), c.svcs.get(), wanted, classes,
			lagRule{factor: c.opts.LagFactor, least: c.opts.LagMin}, c.passRule(),
			serviceHistory{demote: c.down.demote, expect: c.yields.expect}),
	}
	w.results = make(chan uploadDone, len(w.plan.svcs)+1)
	return w.run(ctx)
}

// write is the state of one Put, owned by the goroutine running it: the
// plan decides, the write does the I/O and tells the plan what happened.
type write struct {
	c    *Client
	hash string
	src  *blockSource
	res  *PutResult
	plan *writePlan

	prog       *sendProgress   // nil unless PutOptions.Progress
	running    map[int]*upload // uploads the plan counts in flight, by service index
	goroutines int             // uploads started whose results have not been read
	results    chan uploadDone
}

type uploadDone struct {
	u   *upload
	out outcome
}

func (w *write) run(ctx context.Context) (*PutResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	err := w.passes(ctx)
	// Uploads still running were replaced, were cut short by an error or
	// the caller, or are no longer needed because other answers counted
	// for more than asked: stop them, and count whatever they stored
	// anyway.
	cause := err
	if cause == nil {
		cause = errNotNeeded
	}
	cancel(cause)
	w.drain()
	if err == nil && w.prog != nil {
		w.prog.finish()
	}
	w.res.Replicas = w.plan.stored
	if len(w.plan.confirmed) > 0 {
		w.res.Classes = maps.Clone(w.plan.confirmed)
	}
	w.res.Volumes = w.plan.stores()
	return w.res, err
}

// passes runs the write's passes until the plan is done or gives up.
func (w *write) passes(ctx context.Context) error {
	bare := w.res.Locator.Bare() // errors never carry a signature
	for {
		if err := w.pass(ctx); err != nil {
			return fmt.Errorf("writing block %s: %w", bare, err)
		}
		if w.plan.done() {
			return nil
		}
		d, ok := w.plan.again()
		if !ok {
			return w.insufficient()
		}
		if err := w.pause(ctx, d); err != nil {
			return fmt.Errorf("writing block %s: %w", bare, err)
		}
		if w.c.opts.Refresh != nil {
			w.c.refresh(ctx)
			w.plan.setServices(w.hash, w.c.svcs.get())
		}
		if !w.plan.newPass() {
			return w.insufficient()
		}
	}
}

// pass runs one pass: it starts what the plan allows, replaces what the
// plan finds lagging, and folds in results, until the pass is over.
func (w *write) pass(ctx context.Context) error {
	for {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		w.start(ctx)
		if w.plan.passOver() {
			return nil
		}
		now := time.Now()
		lagging, wake := w.plan.lagging(now, w.progress)
		if len(lagging) > 0 {
			w.replace(lagging)
			continue // start their successors at once
		}
		var timer *time.Timer
		var fire <-chan time.Time
		if !wake.IsZero() {
			timer = time.NewTimer(wake.Sub(now))
			fire = timer.C
		}
		select {
		case d := <-w.results:
			w.finish(d)
		case <-fire:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// progress reports the in-flight upload to service i, for the plan.
func (w *write) progress(i int) progress {
	u := w.running[i]
	return u.progress(w.c.down.isDown(u.svc.URL()))
}

// start starts every upload the plan allows now.
func (w *write) start(ctx context.Context) {
	for {
		i, _, ok := w.plan.next()
		if !ok {
			return
		}
		u := &upload{
			svc:       w.plan.svcs[i],
			hash:      w.hash,
			src:       w.src,
			requestID: w.res.RequestID,
			desired:   w.plan.wanted,
			prog:      w.prog,
			classes:   w.plan.pendingClasses(),
			i:         i,
			pass:      w.plan.pass,
		}
		uctx, cancel := context.WithCancelCause(ctx)
		u.cancel = cancel
		w.running[i] = u
		w.goroutines++
		go func() {
			out := u.run(uctx, w.c)
			cancel(nil)
			w.results <- uploadDone{u: u, out: out}
		}()
	}
}

// replace abandons the lagging uploads whose bodies are not complete
// yet; the plan then starts the next services in their place. A lag
// measured in this write marks the service slow for other writes too.
func (w *write) replace(lagging []replacement) {
	for _, r := range lagging {
		u := w.running[r.i]
		if !u.abort() {
			continue // its body just completed: it stays
		}
		u.replaced = true
		delete(w.running, r.i)
		w.plan.replace(r.i, errReplaced.Error())
		w.res.Replaced++
		if r.measured {
			w.c.down.noteSlow(u.svc.URL())
		}
	}
}

// pause waits d between passes, folding in results of replaced uploads
// as they end.
func (w *write) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return nil
		case r := <-w.results:
			w.finish(r)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// finish folds one upload's outcome into the plan and the result.
func (w *write) finish(d uploadDone) {
	w.goroutines--
	u, o := d.u, d.out
	a := Attempt{
		Service:  u.svc,
		Pass:     u.pass,
		Status:   o.status,
		Message:  o.msg,
		Duration: o.elapsed,
	}
	if u.replaced {
		// The plan has counted it already; whatever the server said,
		// it never had the whole block.
		a.Replaced, a.Status, a.Message = true, 0, errReplaced.Error()
		w.res.Attempts = append(w.res.Attempts, a)
		return
	}
	delete(w.running, u.i)
	a.Replicas = w.plan.record(u.i, o)
	if o.ok() {
		w.c.yields.note(u.svc.URL(), o.worth())
		if w.res.Locator.Hints == nil && o.locator != "" {
			if l, err := locator.Parse(o.locator); err == nil {
				w.res.Locator = l
			}
		}
	}
	w.res.Attempts = append(w.res.Attempts, a)
}

// drain waits for every upload still running.
func (w *write) drain() {
	for w.goroutines > 0 {
		w.finish(<-w.results)
	}
}

func (w *write) insufficient() error {
	e := &InsufficientReplicasError{
		Locator:  locator.Locator{Hash: w.hash, Size: int64(w.src.len())}.String(),
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
			Replicas:  o.counted,
		})
	}
	return e
}

// sendProgress turns the body bytes of a write's uploads into calls of
// PutOptions.Progress: the bytes sent over all uploads divided by the
// replicas wanted, never beyond the block's size.
type sendProgress struct {
	size, per int64
	report    func(int)
	sent      atomic.Int64 // body bytes handed to the transport, all uploads
	reported  atomic.Int64
}

func (p *sendProgress) add(n int) {
	p.advance(min(p.sent.Add(int64(n))/p.per, p.size))
}

// finish reports the rest of the block once the write has succeeded.
func (p *sendProgress) finish() { p.advance(p.size) }

func (p *sendProgress) advance(to int64) {
	for {
		r := p.reported.Load()
		if to <= r {
			return
		}
		if p.reported.CompareAndSwap(r, to) {
			p.report(int(to - r))
			return
		}
	}
}
