// Package protocol is the Keep wire vocabulary shared by the client, the
// block server, the proxy and the test servers: header names, the
// storage-classes and volumes headers, bearer tokens, request ids, log-safe paths
// and the status contract: which statuses a client may retry, and what a
// proxy answers for the answers of the servers behind it.
//
// Every parser here treats its input as hostile: it runs in time linear
// in the input, bounds what it accepts, and reports a malformed value as
// an error rather than guessing.
package protocol

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Header names used by Keep clients and servers.
const (
	HeaderDesiredReplicas  = "X-Keep-Desired-Replicas"
	HeaderReplicasStored   = "X-Keep-Replicas-Stored"
	HeaderStorageClasses   = "X-Keep-Storage-Classes"
	HeaderClassesConfirmed = "X-Keep-Storage-Classes-Confirmed"
	HeaderLocator          = "X-Keep-Locator"
	HeaderSignature        = "X-Keep-Signature"
	HeaderRequestID        = "X-Request-Id"
	HeaderRetryAfter       = "Retry-After"

	// HeaderVolumesStored is ours, not Arvados's: on a successful PUT,
	// the volumes (mounts) that hold the block afterwards, each with the
	// replicas it counts for (its Replication), "uuid=n, uuid=m" (see
	// ParseVolumes). It lets a client count storage devices rather than
	// answers: two servers sharing a bucket name the same volume.
	HeaderVolumesStored = "X-Keep-Volumes-Stored"

	// HeaderVolumesMissing is ours, not Arvados': on GET /mounts, the
	// number of configured volumes the server could not open and leaves
	// out of the list. Their blocks are unknown, so keep balance counts
	// the server's inventory incomplete and withholds trash.
	HeaderVolumesMissing = "X-Keep-Volumes-Missing"
)

// Bounds on what the parsers accept.
const (
	// MaxClasses is the most distinct storage classes one header may
	// name. Arvados clusters configure a handful.
	MaxClasses = 64
	// MaxClassLen is the longest storage class name accepted, in bytes.
	MaxClassLen = 256
	// MaxReplicas is the largest replica count a header may carry. No
	// cluster stores a block anywhere near this many times; a larger
	// value is an error, not a count.
	MaxReplicas = 1 << 16
	// MaxVolumes is the most distinct volumes one X-Keep-Volumes-Stored
	// may name. A block is normally on one volume of a server, a few
	// when storage classes ask for more.
	MaxVolumes = 64
	// MaxVolumeIDLen is the longest volume uuid accepted, in bytes. An
	// Arvados volume uuid has 27.
	MaxVolumeIDLen = 256
	// MaxRetryAfter is the longest Retry-After honoured; longer values
	// are cut to it.
	MaxRetryAfter = 24 * time.Hour
)

// ErrMalformed is wrapped by every parse error of this package.
var ErrMalformed = errors.New("malformed header")

func malformed(header, why string) error {
	return fmt.Errorf("%w %s: %s", ErrMalformed, header, why)
}

// ParseClasses parses X-Keep-Storage-Classes values: comma-separated
// class names, trimmed, with empty items and repeats dropped, in order of
// first appearance. It returns an error when a name is longer than
// MaxClassLen or more than MaxClasses distinct names appear. No values
// (or only empty items) give nil: the server's default class.
func ParseClasses(values []string) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			c := strings.TrimSpace(item)
			if c == "" || seen[c] {
				continue
			}
			if len(c) > MaxClassLen {
				return nil, malformed(HeaderStorageClasses, fmt.Sprintf("class name of %d bytes (at most %d)", len(c), MaxClassLen))
			}
			if len(out) == MaxClasses {
				return nil, malformed(HeaderStorageClasses, fmt.Sprintf("more than %d classes", MaxClasses))
			}
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

// FormatClasses formats classes for X-Keep-Storage-Classes.
func FormatClasses(classes []string) string { return strings.Join(classes, ", ") }

// ParseConfirmed parses X-Keep-Storage-Classes-Confirmed, "c1=n, c2=m",
// into replicas per class (repeated classes add up, capped at
// MaxReplicas). An empty value, a malformed item, a count outside
// [0, MaxReplicas] or more than MaxClasses classes is an error.
func ParseConfirmed(h string) (map[string]int, error) {
	if strings.TrimSpace(h) == "" {
		return nil, malformed(HeaderClassesConfirmed, "empty")
	}
	out := make(map[string]int)
	for part := range strings.SplitSeq(h, ",") {
		name, num, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok:
			return nil, malformed(HeaderClassesConfirmed, fmt.Sprintf("%q has no count", short(part)))
		case name == "" || strings.ContainsAny(name, " \t="):
			return nil, malformed(HeaderClassesConfirmed, fmt.Sprintf("bad class name in %q", short(part)))
		case len(name) > MaxClassLen:
			return nil, malformed(HeaderClassesConfirmed, fmt.Sprintf("class name of %d bytes (at most %d)", len(name), MaxClassLen))
		}
		n, err := parseCount(num)
		if err != nil {
			return nil, malformed(HeaderClassesConfirmed, fmt.Sprintf("class %q: %v", short(name), err))
		}
		if _, dup := out[name]; !dup && len(out) == MaxClasses {
			return nil, malformed(HeaderClassesConfirmed, fmt.Sprintf("more than %d classes", MaxClasses))
		}
		out[name] = min(out[name]+n, MaxReplicas)
	}
	return out, nil
}

// FormatConfirmed formats replicas per class for
// X-Keep-Storage-Classes-Confirmed, sorted by class: "a=1, b=2".
func FormatConfirmed(m map[string]int) string {
	names := make([]string, 0, len(m))
	for c := range m {
		names = append(names, c)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, c := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(m[c]))
	}
	return b.String()
}

// ParseVolumes parses X-Keep-Volumes-Stored, "uuid=n, uuid=m", into
// replicas per volume uuid. A uuid named more than once is one volume: it
// counts once, with the largest count given. An empty value, a malformed
// item, a uuid that ValidVolumeID refuses, a count outside
// [0, MaxReplicas] or more than MaxVolumes volumes is an error.
func ParseVolumes(h string) (map[string]int, error) {
	if strings.TrimSpace(h) == "" {
		return nil, malformed(HeaderVolumesStored, "empty")
	}
	out := make(map[string]int)
	for part := range strings.SplitSeq(h, ",") {
		id, num, ok := strings.Cut(strings.TrimSpace(part), "=")
		id = strings.TrimSpace(id)
		switch {
		case !ok:
			return nil, malformed(HeaderVolumesStored, fmt.Sprintf("%q has no count", short(part)))
		case len(id) > MaxVolumeIDLen:
			return nil, malformed(HeaderVolumesStored, fmt.Sprintf("volume uuid of %d bytes (at most %d)", len(id), MaxVolumeIDLen))
		case !ValidVolumeID(id):
			return nil, malformed(HeaderVolumesStored, fmt.Sprintf("bad volume uuid in %q", short(part)))
		}
		n, err := parseCount(num)
		if err != nil {
			return nil, malformed(HeaderVolumesStored, fmt.Sprintf("volume %q: %v", short(id), err))
		}
		old, dup := out[id]
		if !dup && len(out) == MaxVolumes {
			return nil, malformed(HeaderVolumesStored, fmt.Sprintf("more than %d volumes", MaxVolumes))
		}
		out[id] = max(old, n)
	}
	return out, nil
}

// ValidVolumeID reports whether X-Keep-Volumes-Stored can name the
// volume id: 1 to MaxVolumeIDLen bytes of printable ASCII other than
// space, ',' and '='. Arvados volume uuids (zzzzz-nyw5e-...) are.
func ValidVolumeID(id string) bool {
	if id == "" || len(id) > MaxVolumeIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

// FormatVolumes formats replicas per volume for X-Keep-Volumes-Stored,
// sorted by uuid: "a=1, b=2". Every uuid must satisfy ValidVolumeID.
func FormatVolumes(m map[string]int) string { return FormatConfirmed(m) }

// ParseReplicas parses a replica count header (X-Keep-Replicas-Stored,
// X-Keep-Desired-Replicas): a decimal integer in [0, MaxReplicas].
func ParseReplicas(h string) (int, error) {
	n, err := parseCount(h)
	if err != nil {
		return 0, malformed(HeaderReplicasStored, err.Error())
	}
	return n, nil
}

// parseCount parses a decimal count in [0, MaxReplicas] without ever
// overflowing.
func parseCount(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("no number")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		d := s[i]
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("%q is not a non-negative integer", short(s))
		}
		n = 10*n + int(d-'0')
		if n > MaxReplicas {
			return 0, fmt.Errorf("%q is more than %d", short(s), MaxReplicas)
		}
	}
	return n, nil
}

// ParseRetryAfter reads a Retry-After header, seconds or an HTTP date,
// relative to now. It reports false when the header is absent or
// unusable; a present value is at least one millisecond (so that its
// presence alone marks a 503 as busy) and at most MaxRetryAfter.
func ParseRetryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		secs := min(n, int64(MaxRetryAfter/time.Second))
		return max(time.Duration(secs)*time.Second, time.Millisecond), true
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), time.Millisecond), MaxRetryAfter), true
	}
	return 0, false
}

// Token errors, as BearerToken reports them. Their text is what servers
// answer with 401.
var (
	ErrNoToken        = errors.New("no token provided in Authorization header")
	ErrMalformedToken = errors.New("malformed Authorization header")
)

// BearerToken returns the token of an "Authorization: Bearer T" or
// "Authorization: OAuth2 T" header (scheme case-insensitive), or
// ErrNoToken or ErrMalformedToken.
func BearerToken(h http.Header) (string, error) {
	a := h.Get("Authorization")
	if a == "" {
		return "", ErrNoToken
	}
	scheme, tok, ok := strings.Cut(a, " ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" || strings.ContainsAny(tok, " \t") ||
		!(strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth2")) {
		return "", ErrMalformedToken
	}
	return tok, nil
}

// maxLoggedPath is the longest path RedactPath returns, before "...".
const maxLoggedPath = 200

// RedactPath returns a request path fit for a log: permission signature
// hints (+A..., +R...) are dropped, so that logs never hold credentials,
// and the result is cut to a few hundred bytes.
func RedactPath(p string) string {
	var b strings.Builder
	for i, part := range strings.Split(p, "+") {
		if i > 0 {
			if part != "" && (part[0] == 'A' || part[0] == 'R') {
				continue
			}
			b.WriteByte('+')
		}
		b.WriteString(part)
		if b.Len() > maxLoggedPath {
			break
		}
	}
	out := b.String()
	if len(out) > maxLoggedPath {
		out = out[:maxLoggedPath] + "..."
	}
	return out
}

// NewRequestID returns a request id in the form Arvados generates:
// "req-" and 20 base-36 characters.
func NewRequestID() string { return "req-" + RandomBase36(20) }

// RandomBase36 returns n random lowercase letters and digits, the
// characters of the random parts of Arvados uuids, tokens and request
// ids. (256 is not a multiple of 36: a few characters are slightly more
// likely, which costs well under a bit per character.)
func RandomBase36(n int) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b)
}

// maxRequestIDLen is the longest client-given request id RequestID
// echoes.
const maxRequestIDLen = 200

// RequestID returns the X-Request-Id a server should use for a request
// that carried given: given itself when it is 1 to 200 bytes of
// printable ASCII without spaces, so that a client can follow its id
// through the logs of every server it wrote to; otherwise a new id from
// NewRequestID, so that a hostile or broken id never reaches a log.
func RequestID(given string) string {
	if given == "" || len(given) > maxRequestIDLen {
		return NewRequestID()
	}
	for i := 0; i < len(given); i++ {
		if given[i] < 0x21 || given[i] > 0x7e {
			return NewRequestID()
		}
	}
	return given
}

// short cuts s for use inside an error message.
func short(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
