package keepstore

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// The guards of the route table (routeTable): each returns a handler
// that answers a refusal (401, 403, ... with the messages Arvados
// keepstore uses, where it has one) unless the request may call h, and
// otherwise calls h with the token it accepted. They run before any
// slot is taken or body byte read, so that a refusal costs nothing.

// anyone lets every request through to h: the route needs no token.
func anyone(h handler) handler { return h }

// system lets through only requests carrying the SystemToken: 403 when
// none is configured or another token is sent, 401 without a token.
func (s *Server) system(h handler) handler {
	return only(&s.systemToken, http.StatusForbidden, "forbidden: no system token configured", h)
}

// managed lets through only requests carrying the ManagementToken: 404
// when none is configured (the routes are disabled), 401 without a
// token, 403 with another.
func (s *Server) managed(h handler) handler {
	return only(&s.mgmtToken, http.StatusNotFound, "Not Found: management endpoints are disabled (no management token configured)", h)
}

// only guards h with the token *want, read at each request (tests set
// a server's after New): while *want is "", it answers code and msg;
// without a token 401, with another 403.
func only(want *string, code int, msg string, h handler) handler {
	return func(w *response, r *http.Request, path, _ string) {
		if *want == "" {
			w.fail(code, msg, nil)
			return
		}
		tok, ok := requestToken(w, r)
		if !ok {
			return
		}
		if !sameToken(tok, *want) {
			w.fail(http.StatusForbidden, "forbidden", nil)
			return
		}
		h(w, r, path, tok)
	}
}

// writer lets through requests carrying a token (any token, without a
// TokenChecker: a PUT is content-addressed, it can only add data) that
// may write blocks.
func (s *Server) writer(h handler) handler {
	return func(w *response, r *http.Request, path, _ string) {
		tok, ok := requestToken(w, r)
		if !ok || !s.allowed(w, r, tok, apiauth.ScopeWrite) {
			return
		}
		h(w, r, path, tok)
	}
}

// reader lets through requests that may read the block whose locator is
// path: with a TokenChecker, a token that may read blocks; with
// RequireSignatures, a token for which the locator carries a valid,
// unexpired signature (and, for GET, a size hint). Without either, it
// lets every request through, as Arvados keepstore does.
func (s *Server) reader(h handler) handler {
	return func(w *response, r *http.Request, path, _ string) {
		var tok string
		if s.tokens != nil {
			var ok bool
			if tok, ok = requestToken(w, r); !ok || !s.allowed(w, r, tok, apiauth.ScopeRead) {
				return
			}
		}
		// The answer depends on the signature, which a cache must
		// not ignore.
		w.Header().Set("Vary", protocol.HeaderSignature)
		if s.requireSigs {
			var ok bool
			if tok, ok = s.signed(w, r, path, tok); !ok {
				return
			}
		}
		h(w, r, path, tok)
	}
}

// signed returns the request's token (tok, when the caller has taken
// it already, else the request's) if the locator path carries a valid,
// unexpired signature for it; otherwise it answers 400, 401 or 405 and
// returns false.
func (s *Server) signed(w *response, r *http.Request, path, tok string) (string, bool) {
	loc, ok := parseLocator(w, path)
	if !ok {
		return "", false
	}
	if tok == "" {
		if tok, ok = requestToken(w, r); !ok {
			return "", false
		}
	}
	if r.Method == http.MethodGet && loc.Size < 0 && loc.Hash != locator.EmptyHash {
		w.fail(http.StatusMethodNotAllowed, "locator has no size hint", nil)
		return "", false
	}
	switch err := s.signer.Verify(loc, tok, time.Now()); {
	case errors.Is(err, locator.ErrExpired):
		w.fail(http.StatusUnauthorized, "expired signature", nil)
		return "", false
	case err != nil:
		w.fail(http.StatusBadRequest, "invalid signature", nil)
		return "", false
	}
	return tok, true
}

// limited calls h, a read or an index listing, if fewer than
// MaxConcurrentRequests of them are running, else answers 503 with
// Retry-After at once: a client is better off trying another server than
// waiting in a queue here.
func (s *Server) limited(h handler) handler {
	return func(w *response, r *http.Request, path, tok string) {
		if !s.limiter.TryAcquire(1) {
			w.fail(http.StatusServiceUnavailable, "server busy", nil)
			return
		}
		defer s.limiter.Release(1)
		h(w, r, path, tok)
	}
}

// allowed answers 403 or 502 and returns false unless tok may do what
// needs scope need, as the TokenChecker says. Without a TokenChecker,
// or for the SystemToken, which is never sent to the registry, it
// returns true.
func (s *Server) allowed(w *response, r *http.Request, tok string, need apiauth.Scope) bool {
	if s.tokens == nil || s.systemToken != "" && sameToken(tok, s.systemToken) {
		return true
	}
	scope, err := s.tokens.Check(r.Context(), tok)
	switch {
	case err != nil:
		w.fail(http.StatusBadGateway, "cannot check the token: "+err.Error(), err)
		return false
	case scope == apiauth.ScopeNone:
		w.fail(http.StatusUnauthorized, "unknown or revoked token", nil)
		return false
	case !scope.Allows(need):
		w.fail(http.StatusForbidden, fmt.Sprintf("forbidden: a token of scope %s may not %s blocks", scope, verb(need)), nil)
		return false
	}
	return true
}

// verb names what scope need allows, for a refusal.
func verb(need apiauth.Scope) string {
	if need == apiauth.ScopeRead {
		return "read"
	}
	return "write"
}

// sameToken compares two tokens in constant time.
func sameToken(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// maxAuthorizationLen is the longest Authorization header accepted, in
// bytes. Arvados tokens are under 100 bytes; OpenID Connect access tokens
// used as bearer tokens run to a few kilobytes.
const maxAuthorizationLen = 8 << 10

// requestToken returns the request's bearer token, or answers 401 (with the
// messages Arvados keepstore uses) and returns false. Several
// Authorization headers are refused rather than one picked: a proxy in
// front might have checked another.
func requestToken(w *response, r *http.Request) (string, bool) {
	switch a := r.Header.Values("Authorization"); {
	case len(a) > 1:
		w.fail(http.StatusUnauthorized, fmt.Sprintf("%v: %d Authorization headers, want one", protocol.ErrMalformedToken, len(a)), nil)
		return "", false
	case len(a) == 1 && len(a[0]) > maxAuthorizationLen:
		w.fail(http.StatusUnauthorized, fmt.Sprintf("%v: %d bytes, longer than the %d allowed", protocol.ErrMalformedToken, len(a[0]), maxAuthorizationLen), nil)
		return "", false
	}
	tok, err := protocol.BearerToken(r.Header)
	if err != nil {
		w.fail(http.StatusUnauthorized, err.Error(), nil)
		return "", false
	}
	return tok, true
}
