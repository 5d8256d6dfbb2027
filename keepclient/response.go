package keepclient

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// maxAnswer is the most of a response body the client reads for a
// message or a locator; a locator with hints is far shorter.
const maxAnswer = 4096

// answer is a server's response to an upload, as received: the untrusted
// input parseUpload turns into an outcome.
type answer struct {
	status    int
	header    http.Header
	body      []byte // at most maxAnswer bytes
	truncated bool   // the body went on beyond maxAnswer
	elapsed   time.Duration
}

// asked is what an upload asked of its service: what its answer must
// match.
type asked struct {
	hash          string
	size          int64
	maxRetryAfter time.Duration // longest Retry-After worth waiting for
}

// parseUpload interprets an upload's answer: what the server claims, each
// count within [0, protocol.MaxReplicas]; what the claims are worth is
// writePlan.record's to decide. It returns, as warnings to log, what in
// the answer was out of range or malformed. A malformed header counts as
// an absent one, except X-Keep-Replicas-Stored, which then counts 1 (as
// absent), as the Arvados clients count it.
func parseUpload(a answer, q asked, now time.Time) (o outcome, warnings []string) {
	o = outcome{status: a.status, msg: firstLine(a.body), elapsed: a.elapsed}
	warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
	if a.status == http.StatusServiceUnavailable {
		if d, ok := protocol.ParseRetryAfter(a.header.Get(protocol.HeaderRetryAfter), now); ok {
			o.retryAfter = d
		}
		if o.retryAfter > q.maxRetryAfter {
			// Busy for longer than the caller will wait: as good as full.
			o.msg = fmt.Sprintf("busy for %v (Retry-After), longer than the %v this client waits: %s", o.retryAfter, q.maxRetryAfter, o.msg)
			o.retryAfter = 0
		}
	}
	if a.status != http.StatusOK {
		return o, nil
	}
	o.msg = ""

	o.replicas = 1
	if h := a.header.Get(protocol.HeaderReplicasStored); h != "" {
		n, err := protocol.ParseReplicas(h)
		if err != nil {
			warn("malformed %s %q; counting 1", protocol.HeaderReplicasStored, short(h))
		} else {
			o.replicas = n
		}
	}

	if vs, present := a.header[http.CanonicalHeaderKey(protocol.HeaderClassesConfirmed)]; present {
		counts, err := protocol.ParseConfirmed(strings.Join(vs, ", "))
		if err != nil {
			warn("%v; not tracking classes", err)
		} else {
			o.classes = counts
		}
	}

	if vs, present := a.header[http.CanonicalHeaderKey(protocol.HeaderVolumesStored)]; present {
		volumes, err := protocol.ParseVolumes(strings.Join(vs, ", "))
		if err != nil {
			warn("%v; counting the answer as if it named no volumes", err)
		} else {
			o.volumes = volumes
		}
	}

	text := strings.TrimSpace(string(a.body))
	switch l, err := locator.Parse(text); {
	case a.truncated:
		warn("response body longer than %d bytes; not a locator", maxAnswer)
	case err != nil:
		warn("unusable locator %q in the response: %v", short(text), err)
	case l.Hash != q.hash || l.Size != q.size:
		warn("response locator %q names another block", short(l.Bare().String()))
	default:
		o.locator = text
	}
	return o, warnings
}

// firstLine returns the first line of a server's message, shortened.
func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// short cuts an untrusted value for a log line.
func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
