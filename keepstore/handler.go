package keepstore

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
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

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *response) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// fail sends a plain-text error and records err (if any) for the log.
func (w *response) fail(code int, msg string, err error) {
	w.err = err
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
// GET /index[/PREFIX] (SystemToken only); GET /_status (JSON);
// GET /metrics (Prometheus); GET /_health/ping; OPTIONS anything (CORS).
// Anything else, including unknown methods, gets 400 Bad Request as
// from Arvados keepstore.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := requestID(r.Header.Get("X-Request-Id"))
	w := &response{ResponseWriter: rw, id: id}
	h := w.Header()
	h.Set("X-Request-Id", id)
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
			slog.String("path", redactPath(r.URL.Path)),
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

func (s *Server) route(w *response, r *http.Request) {
	p := r.URL.Path
	get := r.Method == http.MethodGet
	read := get || r.Method == http.MethodHead
	// A block path is /LOCATOR, or //LOCATOR for reads (old clients).
	loc, rooted := strings.CutPrefix(p, "/")
	loc, double := strings.CutPrefix(loc, "/")
	isLoc := rooted && loc != "" && !strings.Contains(loc, "/")
	switch {
	case r.Method == http.MethodOptions:
		w.WriteHeader(http.StatusOK)
	case p == "/_health/ping" && read:
		writeJSON(w, map[string]string{"health": "OK"})
	case p == "/metrics" && get:
		s.metrics.handler.ServeHTTP(w, r)
	case p == "/_status" && get:
		writeJSON(w, s.Status(r.Context()))
	case (p == "/index" || strings.HasPrefix(p, "/index/")) && get:
		s.limited(w, r, func() { s.handleIndex(w, r, strings.TrimPrefix(strings.TrimPrefix(p, "/index"), "/")) })
	case r.Method == http.MethodPut && isLoc && !double:
		s.limited(w, r, func() { s.handlePut(w, r, loc) })
	case read && isLoc:
		s.limited(w, r, func() { s.handleRead(w, r, loc) })
	default:
		w.fail(http.StatusBadRequest, "Bad Request", nil)
	}
}

// limited runs f if fewer than MaxConcurrentRequests requests are
// running, else answers 503 with Retry-After at once: a client is better
// off trying another server than waiting in a queue here.
func (s *Server) limited(w *response, r *http.Request, f func()) {
	if !s.limiter.TryAcquire(1) {
		w.Header().Set("Retry-After", "1")
		w.fail(http.StatusServiceUnavailable, "server busy", nil)
		return
	}
	defer s.limiter.Release(1)
	f()
}

const (
	msgNoToken        = "no token provided in Authorization header"
	msgMalformedToken = "malformed Authorization header"
)

// bearerToken returns the token from an "Authorization: Bearer T" or
// "OAuth2 T" header, or "" and the reason there is none.
func bearerToken(r *http.Request) (token, problem string) {
	a := r.Header.Get("Authorization")
	if a == "" {
		return "", msgNoToken
	}
	scheme, tok, ok := strings.Cut(a, " ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" || strings.ContainsAny(tok, " \t") ||
		!(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth2")) {
		return "", msgMalformedToken
	}
	return tok, ""
}

// checkSystemToken answers 401 or 403 and returns false unless the
// request carries the system token.
func (s *Server) checkSystemToken(w *response, r *http.Request) bool {
	if s.systemToken == "" {
		w.fail(http.StatusForbidden, "forbidden: no system token configured", nil)
		return false
	}
	tok, problem := bearerToken(r)
	if tok == "" {
		w.fail(http.StatusUnauthorized, problem, nil)
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.systemToken)) != 1 {
		w.fail(http.StatusForbidden, "forbidden", nil)
		return false
	}
	return true
}

// requestID returns the client's X-Request-Id if it is reasonable, else
// a new one: "req-" and 20 base-36 characters, as Arvados makes them.
func requestID(given string) string {
	if given != "" && len(given) <= 200 && isPrintable(given) {
		return given
	}
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := []byte("req-00000000000000000000")
	for i := 4; i < len(b); i++ {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b)
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
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
	h.Set("Access-Control-Expose-Headers", "X-Keep-Locator, X-Keep-Replicas-Stored, X-Keep-Storage-Classes-Confirmed")
	h.Set("Access-Control-Max-Age", "86486400")
}

// redactPath drops permission signatures (+A..., +R...) from a locator
// path, so logs never hold credentials, and caps its length.
func redactPath(p string) string {
	parts := strings.Split(p, "+")
	kept := parts[:1]
	for _, h := range parts[1:] {
		if h != "" && (h[0] == 'A' || h[0] == 'R') {
			continue
		}
		kept = append(kept, h)
	}
	out := strings.Join(kept, "+")
	if len(out) > 200 {
		out = out[:200] + "..."
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
