// Package keepproxy is an HTTP proxy for Keep: it accepts one upload of a
// block and writes it to the block servers behind it with the replicated
// write of package keepclient, and serves reads with fallback.
//
// A proxy is listed to clients as a non-disk service, so they send it one
// upload at a time and count the replicas it reports in
// X-Keep-Replicas-Stored.
package keepproxy

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// DefaultReplicas is the number of copies written when a request has no
// X-Keep-Desired-Replicas header.
const DefaultReplicas = 2

// viaValue marks requests and responses that passed through a proxy, to
// detect a proxy configured to forward to itself.
const viaValue = "HTTP/1.1 keepproxy"

// retryAfter is the Retry-After, in seconds, of every 503 the proxy
// sends: its 503s always mean busy (its own request limit, or busy
// servers behind it), never full, which is 507.
const retryAfter = "1"

// DefaultMaxRequests is the default limit on block requests a proxy
// handles at once; each may hold a 64 MiB buffer.
const DefaultMaxRequests = 32

// Proxy is an http.Handler that forwards Keep requests to block services.
type Proxy struct {
	kc    *keepclient.Client
	log   *slog.Logger
	bufs  sync.Pool     // *[]byte with capacity locator.MaxBlockSize
	slots chan struct{} // one per block request in progress
}

// New returns a proxy that writes and reads through kc. Each request's
// token is passed on to the servers behind it. At most DefaultMaxRequests
// block requests run at once; see SetMaxRequests.
func New(kc *keepclient.Client, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Upstream requests carry Via, so a proxy that forwards to itself
	// (directly or through another) refuses instead of looping.
	p := &Proxy{kc: kc.WithHeader("Via", viaValue), log: log, slots: make(chan struct{}, DefaultMaxRequests)}
	p.bufs.New = func() any {
		b := make([]byte, locator.MaxBlockSize)
		return &b
	}
	return p
}

// SetMaxRequests sets how many block requests may run at once; beyond
// that the proxy answers 503 with Retry-After at once instead of queueing.
// Call it before serving.
func (p *Proxy) SetMaxRequests(n int) {
	p.slots = make(chan struct{}, max(n, 1))
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	reqID := protocol.RequestID(r.Header.Get(protocol.HeaderRequestID))
	sw.Header().Set(protocol.HeaderRequestID, reqID)
	sw.Header().Set("Via", viaValue)
	p.serve(sw, r, reqID)
	p.log.Info("request", "request_id", reqID, "method", r.Method, "path", protocol.RedactPath(r.URL.Path),
		"status", sw.status, "replicas", sw.Header().Get(protocol.HeaderReplicasStored), "duration", time.Since(start))
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, reqID string) {
	if strings.Contains(r.Header.Get("Via"), "keepproxy") {
		http.Error(w, "loop detected", http.StatusInternalServerError)
		return
	}
	token, tokenErr := protocol.BearerToken(r.Header)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.URL.Path == "/_health/ping" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"health":"OK"}`+"\n")
		return
	}
	if tokenErr != nil {
		http.Error(w, tokenErr.Error(), http.StatusUnauthorized)
		return
	}
	loc, err := locator.Parse(strings.TrimPrefix(r.URL.Path, "/"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	default:
		w.Header().Set(protocol.HeaderRetryAfter, retryAfter)
		http.Error(w, "proxy busy", http.StatusServiceUnavailable)
		return
	}
	kc := p.kc.WithToken(token)
	switch r.Method {
	case http.MethodPut:
		p.put(w, r, kc, loc, reqID)
	case http.MethodGet, http.MethodHead:
		p.get(w, r, kc, loc)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (p *Proxy) put(w http.ResponseWriter, r *http.Request, kc *keepclient.Client, loc locator.Locator, reqID string) {
	size := r.ContentLength
	switch {
	case size < 0:
		http.Error(w, "Content-Length required", http.StatusLengthRequired)
		return
	case size > locator.MaxBlockSize:
		http.Error(w, fmt.Sprintf("block of %d bytes exceeds the maximum %d", size, locator.MaxBlockSize), http.StatusRequestEntityTooLarge)
		return
	case loc.Size >= 0 && loc.Size != size:
		http.Error(w, fmt.Sprintf("Content-Length %d does not match locator size %d", size, loc.Size), http.StatusBadRequest)
		return
	}
	replicas := DefaultReplicas
	if h := r.Header.Get(protocol.HeaderDesiredReplicas); h != "" {
		n, err := protocol.ParseReplicas(h)
		if err != nil {
			http.Error(w, fmt.Sprintf("bad %s %q: want an integer from 0 to %d", protocol.HeaderDesiredReplicas, h, protocol.MaxReplicas), http.StatusBadRequest)
			return
		}
		replicas = n
	}
	// Refused before the body is read, like everything above, so that a
	// client sending "Expect: 100-continue" uploads nothing.
	classes, err := protocol.ParseClasses(r.Header.Values(protocol.HeaderStorageClasses))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	bufp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bufp)
	data := (*bufp)[:size]
	h := md5.New()
	if _, err := io.ReadFull(io.TeeReader(r.Body, h), data); err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != loc.Hash {
		http.Error(w, "hash mismatch: body md5 is "+got, http.StatusBadRequest)
		return
	}
	if replicas == 0 {
		w.Header().Set(protocol.HeaderReplicasStored, "0")
		io.WriteString(w, locator.Locator{Hash: loc.Hash, Size: size}.String())
		return
	}

	res, err := kc.Put(r.Context(), data, keepclient.PutOptions{
		Replicas:       replicas,
		StorageClasses: classes,
		RequestID:      reqID,
		Hash:           loc.Hash,
	})
	stored := 0
	if res != nil {
		stored = res.Replicas
	}
	w.Header().Set(protocol.HeaderReplicasStored, strconv.Itoa(stored))
	if stored > 0 {
		// Some replicas are better than none: report the true count and
		// let the client look elsewhere for the rest.
		if len(res.Classes) > 0 {
			w.Header().Set(protocol.HeaderClassesConfirmed, protocol.FormatConfirmed(res.Classes))
		}
		if err != nil {
			p.log.Warn("stored fewer replicas than desired", "request_id", reqID, "err", err)
		}
		io.WriteString(w, res.Locator.String())
		return
	}
	status := failureStatus(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set(protocol.HeaderRetryAfter, retryAfter)
	}
	http.Error(w, err.Error(), status)
}

// failureStatus chooses the answer for a write that stored nothing, so
// that a client following keepclient's retry rules does the right thing:
// 507 when every server was full (not retried), 503 (sent with
// Retry-After) when servers were busy (retried later), else 502
// (retried).
func failureStatus(err error) int {
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) || len(ire.Services) == 0 {
		if errors.Is(err, context.Canceled) {
			return 499
		}
		return http.StatusBadGateway
	}
	full, busy := true, false
	for _, s := range ire.Services {
		switch {
		case s.Status == http.StatusInsufficientStorage:
		case s.Status == http.StatusServiceUnavailable && s.Retryable:
			busy = true
			full = false
		case s.Status == http.StatusServiceUnavailable:
		default:
			full = false
		}
	}
	switch {
	case busy:
		return http.StatusServiceUnavailable
	case full:
		return http.StatusInsufficientStorage
	}
	return http.StatusBadGateway
}

func (p *Proxy) get(w http.ResponseWriter, r *http.Request, kc *keepclient.Client, loc locator.Locator) {
	if r.Method == http.MethodHead {
		size, err := kc.Head(r.Context(), loc)
		if err != nil {
			readFailure(w, err)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		return
	}
	bufp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bufp)
	data, err := kc.Get(r.Context(), loc, (*bufp)[:0])
	if err != nil {
		readFailure(w, err)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(data)
}

func readFailure(w http.ResponseWriter, err error) {
	var nf *keepclient.NotFoundError
	if errors.As(err, &nf) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusBadGateway)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
