package keepstore

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// response wraps the ResponseWriter to record what the request log and
// metrics need.
type response struct {
	http.ResponseWriter
	id     string // request ID
	status int
	bytes  int64
	err    error // detail for the log, never sent to the client
}

func (w *response) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *response) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom passes r to the underlying writer's ReadFrom, which net/http
// turns into sendfile(2) for a file on a plain connection.
func (w *response) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *response) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// fail sends a plain-text error and records err (if any) for the log.
// A 503 gets Retry-After (protocol.BusyRetryAfter), so that clients know
// to try again: a 503 from this server always means a passing condition
// (too many requests, a failing volume), and a full server answers 507.
// Clients that follow our status contract (docs/protocol.md) retry a 503
// only when it carries Retry-After, and treat one without it as full.
func (w *response) fail(code int, msg string, err error) {
	w.err = err
	if code == http.StatusServiceUnavailable && w.Header().Get(protocol.HeaderRetryAfter) == "" {
		w.Header().Set(protocol.HeaderRetryAfter, protocol.BusyRetryAfter)
	}
	http.Error(w, msg, code)
}

// countingBody counts the request body bytes read, for metrics.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// ServeHTTP implements http.Handler.
//
// Routes: PUT /HASH[+hints]; GET and HEAD /LOCATOR or //LOCATOR;
// OPTIONS anything (CORS). With the SystemToken: GET /index[/PREFIX],
// GET /mounts, GET /mounts/UUID/blocks[?prefix=P], PUT /pull, PUT
// /trash, GET /pull and GET /trash (what became of the current lists),
// PUT /untrash/LOCATOR, TOUCH /LOCATOR, DELETE /LOCATOR. With the
// ManagementToken: GET /_status (JSON), GET /metrics (Prometheus), GET
// /_health/ping ({"health": "OK", "version": ...}; "ERROR" and an
// "error" while a volume is missing). Anything else, including unknown
// methods, gets 400 Bad Request as from Arvados keepstore.
//
// With a TokenChecker, reads of blocks need a token of scope read and
// PUT one of scope write, unless it is the SystemToken: 401 for a token
// the registry does not know, 403 for one of too small a scope, 502
// when the registry cannot say. Every refusal of a token comes before
// any slot is taken or any body byte read.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := protocol.RequestID(r.Header.Get(protocol.HeaderRequestID))
	w := &response{ResponseWriter: rw, id: id}
	h := w.Header()
	h.Set(protocol.HeaderRequestID, id)
	setCORS(h)
	var body *countingBody
	if r.Body != nil {
		// Count the body through a copy of the request: net/http inspects
		// the original's Body after the handler (to skip reading a body
		// never asked for with "Expect: 100-continue"), so it must stay.
		body = &countingBody{ReadCloser: r.Body}
		r2 := *r
		r2.Body = body
		r = &r2
	}
	s.metrics.inflight.Inc()
	// Deferred, so a handler that aborts the connection with
	// panic(http.ErrAbortHandler) is still logged and counted.
	defer func() {
		s.metrics.inflight.Dec()
		var in int64
		if body != nil {
			in = body.n
		}
		status := w.status
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.observe(r.Method, status, in, w.bytes, d)
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		attrs := []slog.Attr{
			slog.String("request_id", id),
			slog.String("remote", r.RemoteAddr),
			slog.String("method", r.Method),
			slog.String("path", protocol.RedactPath(r.URL.Path)),
			slog.Int("status", status),
			slog.Int64("bytes_in", in),
			slog.Int64("bytes_out", w.bytes),
			slog.Duration("duration", d),
		}
		if w.err != nil {
			attrs = append(attrs, slog.String("error", w.err.Error()))
		}
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
	}()
	s.route(w, r)
}

// maxLocatorLen is the longest locator accepted in a path, in bytes. A
// signed locator with a few hints is under 200; checking the length
// before parsing bounds the work and the error message for a path of
// 100,000 hints.
const maxLocatorLen = 2048

// parseLocator parses a block path's locator, or answers 400 and returns
// false.
func parseLocator(w *response, path string) (locator.Locator, bool) {
	if len(path) > maxLocatorLen {
		w.fail(http.StatusBadRequest, fmt.Sprintf("%v: %d bytes, longer than the %d allowed", locator.ErrSyntax, len(path), maxLocatorLen), nil)
		return locator.Locator{}, false
	}
	loc, err := locator.Parse(path)
	if err != nil {
		// Parse says which part is wrong; the message goes to the
		// client that sent the locator, never to the log.
		w.fail(http.StatusBadRequest, err.Error(), nil)
		return locator.Locator{}, false
	}
	return loc, true
}

// logError logs a problem found while serving w's request, beyond the
// request line itself (corrupt data, failing volumes).
func (s *Server) logError(w *response, r *http.Request, level slog.Level, msg string, err error, attrs ...slog.Attr) {
	attrs = append(attrs, slog.String("request_id", w.id), slog.String("error", err.Error()))
	s.log.LogAttrs(r.Context(), level, msg, attrs...)
}

func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Length, Content-Type, X-Keep-Desired-Replicas, X-Keep-Signature, X-Keep-Storage-Classes")
	h.Set("Access-Control-Expose-Headers", "X-Keep-Locator, X-Keep-Replicas-Stored, X-Keep-Storage-Classes-Confirmed, X-Keep-Volumes-Stored")
	h.Set("Access-Control-Max-Age", "86486400")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
