// Package keepproxy is an HTTP proxy for Keep: it accepts one upload of a
// block and writes it to the block servers behind it with the replicated
// write of package keepclient, and serves reads with fallback.
//
// A proxy is listed to clients as a non-disk service, so they send it one
// upload at a time and count the replicas it reports in
// X-Keep-Replicas-Stored. It writes X-Keep-Desired-Replicas copies in
// all, the whole number the client wants (as the Arvados clients send
// it), counting, as any keepclient write does, the copies already on the
// servers' volumes; when every server behind it named its volumes, it
// names them in X-Keep-Volumes-Stored too, so that a client writing
// through two proxies in front of the same servers counts each volume
// once.
//
// GET /_health/ping answers {"health": "OK", "version": ...}, naming
// the running build (package internal/version).
//
// With Options.TokenChecker, the proxy accepts only the tokens the
// token registry knows: GET and HEAD need a read token, PUT a write
// token (see Options.TokenChecker for the refusals).
//
// # Hostile and faulty clients
//
// Reads and writes have separate limits (Options.MaxReads and
// MaxWrites), so writes can never starve reads. A PUT body is received
// into a buffer that grows as its bytes arrive: a client holds memory in
// proportion to what it has sent, not to what its Content-Length claims,
// and holds no write slot until its body is complete, so clients
// trickling bodies cannot lock others out. Every request and response
// body must also keep up a minimum rate (Options.MinRate, measured over
// each Options.RateWindow); a body that falls behind is answered 408 and
// its connection closed, a response that falls behind is cut off.
//
// Block buffers come from two pools, one for reads and one for writes,
// holding at most MaxReads × 64 MiB and MaxWrites × 64 MiB + 8 MiB (room
// for one growing buffer's last step): that is the proxy's memory bound
// for blocks. Buffers are allocated when needed and
// dropped, with their memory returned to the operating system, after
// Options.BufferIdle unused.
package keepproxy

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/internal/version"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// DefaultReplicas is the number of copies written in all when a request
// has no X-Keep-Desired-Replicas header.
const DefaultReplicas = 2

// Defaults for Options.
const (
	// DefaultMaxWrites and DefaultMaxReads together bound block buffers
	// at 32 × 64 MiB + 8 MiB, just over 2 GiB.
	DefaultMaxWrites = 16
	DefaultMaxReads  = 16
	// DefaultMinRate is the low-speed limit of Arvados's Python client
	// (32 KiB/s): any transfer an Arvados client itself would keep going,
	// the proxy keeps going too. A 64 MiB block at this rate takes 34
	// minutes.
	DefaultMinRate = 32 << 10
	// DefaultRateWindow is long enough for an honest link's pauses and
	// short enough that a stalled client is gone within a minute.
	DefaultRateWindow = time.Minute
	// DefaultBufferIdle is how long an unused block buffer is kept for
	// reuse before its memory goes back to the operating system.
	DefaultBufferIdle = time.Minute
)

// viaValue marks requests and responses that passed through a proxy, to
// detect a proxy configured to forward to itself.
const viaValue = "HTTP/1.1 keepproxy"

// Options configure a Proxy. Zero fields take the defaults.
type Options struct {
	// Logger receives one line per request. Default: discard.
	Logger *slog.Logger
	// MaxWrites is how many PUTs may be written to the servers behind at
	// once; its write buffers hold at most MaxWrites × 64 MiB + 8 MiB. A PUT
	// arriving when no write slot is free, or when its block would not
	// fit in the buffers, is answered 503 with Retry-After before its
	// body is read. PUTs still receiving their bodies hold no slot.
	// Default DefaultMaxWrites.
	MaxWrites int
	// MaxReads is how many GETs and HEADs may run at once; their buffers
	// hold at most MaxReads × 64 MiB (a GET takes its block's size, or
	// 64 MiB when the locator has no size hint). Beyond it: 503 with
	// Retry-After. Default DefaultMaxReads.
	MaxReads int
	// MinRate, in bytes per second, and RateWindow are the low-speed
	// rule for request and response bodies: every MinRate × RateWindow
	// bytes must move within RateWindow of the previous such amount
	// (the first RateWindow counting from the request's arrival). A
	// request body that falls behind is answered 408 and its connection
	// closed; a response that falls behind is cut off. Defaults
	// DefaultMinRate and DefaultRateWindow.
	MinRate    int64
	RateWindow time.Duration
	// BufferIdle is how long an unused block buffer is kept for reuse.
	// Default DefaultBufferIdle.
	BufferIdle time.Duration
	// TokenChecker, if set, says what each token may do (an
	// *apiauth.Checker asking the token registry): GET and HEAD then
	// need a token of scope read, PUT one of scope write; a token the
	// registry does not know gets 401, one whose scope is too small
	// 403, and 502 when the registry cannot say, before anything else
	// is done. Nil means every token is passed on to the servers, which
	// apply their own rules ("keep proxy --any-token").
	TokenChecker TokenChecker
}

// TokenChecker says what a token may do. *apiauth.Checker is one. An
// error means it could not say; its text must not hold the token.
type TokenChecker interface {
	Check(ctx context.Context, token string) (apiauth.Scope, error)
}

// Stats is a snapshot of what a proxy is doing and holding.
type Stats struct {
	Receiving int // PUT bodies being received
	Writing   int // PUTs being written to the servers behind (or waiting for a write slot)
	Reading   int // GETs and HEADs in progress
	// BufferBytes is the memory held in block buffers, in use and idle;
	// IdleBufferBytes the part kept for reuse.
	BufferBytes, IdleBufferBytes int64
}

// Proxy is an http.Handler that forwards Keep requests to block services.
type Proxy struct {
	kc   *keepclient.Client
	log  *slog.Logger
	opts Options

	writeSlots chan struct{} // one per PUT being written upstream
	writeBufs  *bufPool
	readSlots  chan struct{} // one per GET or HEAD in progress
	readBufs   *bufPool

	receiving, writing atomic.Int32
	// hook, when set (by tests), is called with "receiving" once a PUT
	// body's first bytes have arrived, and with "response cut" once a
	// request whose client read too slowly has ended.
	hook func(event string)
}

// New returns a proxy with the default Options that writes and reads
// through kc and logs to log (nil: discard). Each request's token is
// passed on to the servers behind it.
func New(kc *keepclient.Client, log *slog.Logger) *Proxy {
	return NewWithOptions(kc, Options{Logger: log})
}

// NewWithOptions returns a proxy that writes and reads through kc,
// configured by opts.
func NewWithOptions(kc *keepclient.Client, opts Options) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxWrites <= 0 {
		opts.MaxWrites = DefaultMaxWrites
	}
	if opts.MaxReads <= 0 {
		opts.MaxReads = DefaultMaxReads
	}
	if opts.MinRate <= 0 {
		opts.MinRate = DefaultMinRate
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = DefaultRateWindow
	}
	if opts.BufferIdle <= 0 {
		opts.BufferIdle = DefaultBufferIdle
	}
	// Upstream requests carry Via, so a proxy that forwards to itself
	// (directly or through another) refuses instead of looping.
	p := &Proxy{kc: kc.WithHeader("Via", viaValue), log: opts.Logger}
	p.setLimits(opts)
	return p
}

func (p *Proxy) setLimits(opts Options) {
	p.opts = opts
	p.writeSlots = make(chan struct{}, opts.MaxWrites)
	// The headroom lets a body's buffer make its last jump (growJump)
	// while the others hold whole blocks.
	p.writeBufs = newBufPool(int64(opts.MaxWrites)*locator.MaxBlockSize+growHeadroom, opts.BufferIdle)
	p.readSlots = make(chan struct{}, opts.MaxReads)
	p.readBufs = newBufPool(int64(opts.MaxReads)*locator.MaxBlockSize, opts.BufferIdle)
}

// SetMaxRequests sets both MaxReads and MaxWrites to n (at least 1).
// Call it before serving.
func (p *Proxy) SetMaxRequests(n int) {
	p.writeBufs.close()
	p.readBufs.close()
	opts := p.opts
	opts.MaxReads, opts.MaxWrites = max(n, 1), max(n, 1)
	p.setLimits(opts)
}

// Stats reports what the proxy is doing and the memory its buffers hold.
func (p *Proxy) Stats() Stats {
	wh, wi := p.writeBufs.usage()
	rh, ri := p.readBufs.usage()
	return Stats{
		Receiving:       int(p.receiving.Load()),
		Writing:         int(p.writing.Load()),
		Reading:         len(p.readSlots),
		BufferBytes:     wh + rh,
		IdleBufferBytes: wi + ri,
	}
}

// Close drops the proxy's idle buffers and stops keeping any. Call it
// once the server using the proxy has stopped.
func (p *Proxy) Close() {
	p.writeBufs.close()
	p.readBufs.close()
}

func (p *Proxy) event(name string) {
	if p.hook != nil {
		p.hook(name)
	}
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rc := http.NewResponseController(w)
	// A response's low-speed window starts when it is written; a write
	// deadline left from an earlier request on the connection must not
	// cut this one's "100 Continue". Read deadlines are set only while a
	// PUT body arrives: net/http reads in the background to notice a
	// client hanging up, and a deadline passing there would cancel the
	// request while the proxy waits on its servers.
	rc.SetWriteDeadline(time.Time{})
	sw := &respWriter{ResponseWriter: w, rc: rc, status: http.StatusOK, minRate: p.opts.MinRate, window: p.opts.RateWindow}
	reqID := protocol.RequestID(r.Header.Get(protocol.HeaderRequestID))
	sw.Header().Set(protocol.HeaderRequestID, reqID)
	sw.Header().Set("Via", viaValue)
	p.serve(sw, r, rc, reqID)
	if r.ContentLength != 0 {
		// Bounds net/http's discarding of a body left unread.
		rc.SetReadDeadline(time.Now().Add(p.opts.RateWindow))
	}
	if sw.cut {
		p.log.Warn("response cut off: the client read it too slowly", "request_id", reqID, "min_rate", p.opts.MinRate)
		p.event("response cut")
	}
	p.log.Info("request", "request_id", reqID, "method", r.Method, "path", protocol.RedactPath(r.URL.Path),
		"status", sw.status, "replicas", sw.Header().Get(protocol.HeaderReplicasStored), "duration", time.Since(start))
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, reqID string) {
	if isLoop(r.Header) {
		http.Error(w, "loop detected", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.URL.Path == "/_health/ping" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(health{Health: "OK", Version: version.String()})
		return
	}
	tok, rerr := token(r.Header)
	if rerr != nil {
		http.Error(w, rerr.msg, rerr.status)
		return
	}
	if rerr := p.authorize(r, tok, reqID); rerr != nil {
		http.Error(w, rerr.msg, rerr.status)
		return
	}
	loc, rerr := parsePath(r.URL.Path)
	if rerr != nil {
		http.Error(w, rerr.msg, rerr.status)
		return
	}
	kc := p.kc.WithToken(tok)
	switch r.Method {
	case http.MethodPut:
		p.put(w, r, rc, kc, loc, reqID)
	case http.MethodGet, http.MethodHead:
		p.get(w, r, kc, loc)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// authorize refuses, with 401, 403 or 502, a GET, HEAD or PUT whose
// token may not do it, as Options.TokenChecker says. Other methods are
// left to be refused as they are.
func (p *Proxy) authorize(r *http.Request, tok, reqID string) *requestError {
	var need apiauth.Scope
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		need = apiauth.ScopeRead
	case http.MethodPut:
		need = apiauth.ScopeWrite
	}
	if p.opts.TokenChecker == nil || need == apiauth.ScopeNone {
		return nil
	}
	scope, err := p.opts.TokenChecker.Check(r.Context(), tok)
	switch {
	case err != nil:
		p.log.Error("cannot check a token", "request_id", reqID, "error", err)
		return refuse(http.StatusBadGateway, "cannot check the token: %v", err)
	case scope == apiauth.ScopeNone:
		return refuse(http.StatusUnauthorized, "unknown or revoked token")
	case !scope.Allows(need):
		what := "read"
		if need == apiauth.ScopeWrite {
			what = "write"
		}
		return refuse(http.StatusForbidden, "forbidden: a token of scope %s may not %s blocks", scope, what)
	}
	return nil
}

// health is the answer to /_health/ping: "health" as Arvados services
// and their monitors expect, and which build is running.
type health struct {
	Health  string `json:"health"`
	Version string `json:"version"`
}

// busy answers 503 with Retry-After: the proxy's 503s always mean busy
// (its own request limits here, busy servers behind it in
// protocol.ProxyStatus), never full, which is 507.
func busy(w http.ResponseWriter, msg string) {
	w.Header().Set(protocol.HeaderRetryAfter, protocol.BusyRetryAfter)
	http.Error(w, msg, http.StatusServiceUnavailable)
}
