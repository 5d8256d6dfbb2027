package keepproxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// Bounds on what the proxy accepts before it reads a body or asks a
// server anything. Each check below runs in time linear in its input,
// and no error message echoes more than a few dozen bytes of it.
const (
	// MaxLocatorLen is the longest request path accepted, in bytes. A
	// signed locator with a remote-cluster hint is about 130.
	MaxLocatorLen = 1024
	// MaxHints is the most hints (+A..., +K..., ...) a locator may carry.
	MaxHints = 16
	// MaxTokenLen is the longest token accepted in Authorization, in
	// bytes: room for OpenID Connect access tokens, which Arvados accepts.
	MaxTokenLen = 8192
)

// requestError is a refusal: the status to answer and a message.
type requestError struct {
	status int
	msg    string
}

func refuse(status int, format string, args ...any) *requestError {
	return &requestError{status, fmt.Sprintf(format, args...)}
}

// isLoop reports whether the request already passed through a keepproxy,
// in any of its Via headers, however capitalised.
func isLoop(h http.Header) bool {
	for _, v := range h.Values("Via") {
		if containsFold(v, "keepproxy") {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lowercase ASCII word,
// ignoring ASCII case, without allocating.
func containsFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i]|0x20 != word[0] {
			continue
		}
		j := 1
		for j < len(word) && s[i+j]|0x20 == word[j] {
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// token returns the request's bearer token, refusing a missing, malformed,
// overlong or non-printable one with 401.
func token(h http.Header) (string, *requestError) {
	if len(h.Values("Authorization")) > 1 {
		return "", refuse(http.StatusUnauthorized, "%v: more than one", protocol.ErrMalformedToken)
	}
	tok, err := protocol.BearerToken(h)
	if err != nil {
		return "", refuse(http.StatusUnauthorized, "%v", err)
	}
	if len(tok) > MaxTokenLen {
		return "", refuse(http.StatusUnauthorized, "%v: token of %d bytes (at most %d)", protocol.ErrMalformedToken, len(tok), MaxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return "", refuse(http.StatusUnauthorized, "%v: token holds a byte that is not printable ASCII", protocol.ErrMalformedToken)
		}
	}
	return tok, nil
}

// parsePath parses the request path as a locator, refusing with 400 one
// that is too long, does not parse, or carries too many hints.
func parsePath(path string) (locator.Locator, *requestError) {
	s := strings.TrimPrefix(path, "/")
	if len(s) > MaxLocatorLen {
		return locator.Locator{}, refuse(http.StatusBadRequest, "locator of %d bytes (at most %d)", len(s), MaxLocatorLen)
	}
	// Counted before parsing, so that a path of many hints is refused
	// without splitting it; one '+' may be the size's.
	if strings.Count(s, "+") > MaxHints+1 {
		return locator.Locator{}, refuse(http.StatusBadRequest, "locator with more than %d hints", MaxHints)
	}
	loc, err := locator.Parse(s)
	if err != nil {
		return locator.Locator{}, refuse(http.StatusBadRequest, "%v", err)
	}
	if len(loc.Hints) > MaxHints {
		return locator.Locator{}, refuse(http.StatusBadRequest, "locator with %d hints (at most %d)", len(loc.Hints), MaxHints)
	}
	return loc, nil
}

// putHeaders are the PUT headers the proxy acts on, checked.
type putHeaders struct {
	size     int64
	replicas int
	classes  []string
}

// checkPut checks a PUT's length, desired replicas and storage classes
// against its locator, all before the body is read, so that a client
// sending "Expect: 100-continue" uploads nothing when refused.
func checkPut(r *http.Request, loc locator.Locator) (putHeaders, *requestError) {
	var ph putHeaders
	// net/http has parsed Content-Length (refusing a malformed or
	// contradictory one); a PUT without it arrives as length 0 with no
	// header, and a chunked one as length -1.
	ph.size = r.ContentLength
	switch {
	case ph.size < 0 || len(r.Header.Values("Content-Length")) == 0:
		return ph, refuse(http.StatusLengthRequired, "Content-Length required")
	case ph.size > locator.MaxBlockSize:
		return ph, refuse(http.StatusRequestEntityTooLarge, "block of %d bytes exceeds the maximum %d", ph.size, locator.MaxBlockSize)
	case loc.Size >= 0 && loc.Size != ph.size:
		return ph, refuse(http.StatusBadRequest, "Content-Length %d does not match locator size %d", ph.size, loc.Size)
	}
	ph.replicas = DefaultReplicas
	switch vs := r.Header.Values(protocol.HeaderDesiredReplicas); len(vs) {
	case 0:
	case 1:
		n, err := protocol.ParseReplicas(vs[0])
		if err != nil {
			return ph, refuse(http.StatusBadRequest, "bad %s %q: want an integer from 0 to %d", protocol.HeaderDesiredReplicas, clip(vs[0]), protocol.MaxReplicas)
		}
		ph.replicas = n
	default:
		return ph, refuse(http.StatusBadRequest, "bad %s: %d headers, want one", protocol.HeaderDesiredReplicas, len(vs))
	}
	classes, err := protocol.ParseClasses(r.Header.Values(protocol.HeaderStorageClasses))
	if err != nil {
		return ph, refuse(http.StatusBadRequest, "%v", err)
	}
	ph.classes = classes
	return ph, nil
}

// clip cuts s for quoting in an answer.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
