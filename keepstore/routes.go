package keepstore

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// handler serves a request a route matched. path is what the route's
// pattern captured (see route.pattern), named for what it is in each
// handler (a locator, an index prefix); tok is the bearer token the
// route's guard accepted, "" when it asked for none.
type handler func(w *response, r *http.Request, path, tok string)

// route is one call of the server and who may make it.
type route struct {
	methods []string
	// pattern matches a request path: "/metrics" only itself; one ending
	// in "*" every path starting with what precedes it ("*" alone: any
	// path), capturing the rest; one ending in "{block}" a path of one
	// more segment, not empty and without "/", capturing it.
	pattern string
	serve   handler
}

// routeTable is who may call what, in the order routes are matched:
// the first whose method and pattern match a request serves it, and a
// request none matches gets 400 Bad Request, as from Arvados keepstore.
// Each handler stands behind its guard: anyone; system, the
// SystemToken; managed, the ManagementToken; reader and writer, a
// token the TokenChecker allows to read or write blocks (and for
// reader, with RequireSignatures, a valid signature for it). limited
// takes a read slot once the guard has let the request through.
func (s *Server) routeTable() []route {
	read := s.reader(s.limited(s.handleRead))
	return []route{
		newRoute("OPTIONS *", anyone(handleOptions)),
		newRoute("GET|HEAD /_health/*", s.managed(s.handleHealth)),
		newRoute("GET /metrics", s.managed(s.handleMetrics)),
		newRoute("GET /_status", s.managed(s.handleStatus)),
		newRoute("GET /index", s.system(s.limited(s.handleIndex))),
		newRoute("GET /index/*", s.system(s.limited(s.handleIndex))),
		newRoute("GET /mounts", s.system(s.handleMounts)),
		newRoute("GET /mounts/*", s.system(s.limited(s.handleMountIndex))),
		newRoute("PUT /pull", s.system(s.handlePullList)),
		newRoute("PUT /trash", s.system(s.handleTrashList)),
		newRoute("GET /pull", s.system(s.listReport(s.pulls.current))),
		newRoute("GET /trash", s.system(s.listReport(s.trashes.current))),
		newRoute("PUT /untrash/*", s.system(s.limited(s.handleUntrash))),
		newRoute("TOUCH /{block}", s.system(s.limited(s.handleTouch))),
		newRoute("DELETE /{block}", s.system(s.limited(s.handleDelete))),
		// Uploads take write slots of their own (see handlePut).
		newRoute("PUT /{block}", s.writer(s.handlePut)),
		newRoute("GET|HEAD /{block}", read),
		newRoute("GET|HEAD //{block}", read), // old clients
	}
}

// newRoute returns the route of spec, "METHOD[|METHOD...] PATTERN",
// served by h.
func newRoute(spec string, h handler) route {
	methods, pattern, ok := strings.Cut(spec, " ")
	if !ok || methods == "" || !strings.HasPrefix(pattern, "/") && pattern != "*" {
		panic(fmt.Sprintf("keepstore: malformed route %q", spec))
	}
	return route{methods: strings.Split(methods, "|"), pattern: pattern, serve: h}
}

// match reports whether rt serves a request of method for path, and
// what its pattern captures of path.
func (rt route) match(method, path string) (string, bool) {
	if !slices.Contains(rt.methods, method) {
		return "", false
	}
	if prefix, ok := strings.CutSuffix(rt.pattern, "{block}"); ok {
		rest, ok := strings.CutPrefix(path, prefix)
		return rest, ok && rest != "" && !strings.Contains(rest, "/")
	}
	if prefix, ok := strings.CutSuffix(rt.pattern, "*"); ok {
		return strings.CutPrefix(path, prefix)
	}
	return "", path == rt.pattern
}

// route serves r with the first route that matches it.
func (s *Server) route(w *response, r *http.Request) {
	for _, rt := range s.routes {
		if path, ok := rt.match(r.Method, r.URL.Path); ok {
			rt.serve(w, r, path, "")
			return
		}
	}
	w.fail(http.StatusBadRequest, "Bad Request", nil)
}

// handleOptions answers a CORS preflight; ServeHTTP has set the headers.
func handleOptions(w *response, _ *http.Request, _, _ string) {
	w.WriteHeader(http.StatusOK)
}

// handleHealth serves GET /_health/ping (name "ping"); other names are
// not found.
func (s *Server) handleHealth(w *response, _ *http.Request, name, _ string) {
	if name != "ping" {
		w.fail(http.StatusNotFound, "Not Found", nil)
		return
	}
	writeJSON(w, s.health())
}

// handleMetrics serves GET /metrics, in the Prometheus text format.
func (s *Server) handleMetrics(w *response, r *http.Request, _, _ string) {
	s.metrics.handler.ServeHTTP(w, r)
}

// handleStatus serves GET /_status: Status, as JSON.
func (s *Server) handleStatus(w *response, r *http.Request, _, _ string) {
	writeJSON(w, s.Status(r.Context()))
}
