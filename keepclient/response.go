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

// asked is what an upload asked of its service: the limits on what its
// answer may count for.
type asked struct {
	hash          string
	size          int64
	desired       int           // X-Keep-Desired-Replicas sent
	maxRetryAfter time.Duration // longest Retry-After worth waiting for
}

// parseUpload interprets an upload's answer. It counts at most the
// replicas the upload asked for, in total and per class, and returns, as
// warnings to log, what in the answer was out of range or malformed.
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
		switch {
		case err != nil:
			warn("malformed %s %q; counting 1", protocol.HeaderReplicasStored, short(h))
		case n > q.desired:
			warn("%s %d is more than the %d asked for; counting %d", protocol.HeaderReplicasStored, n, q.desired, q.desired)
			o.replicas = q.desired
		default:
			o.replicas = n
		}
	}
	o.replicas = min(o.replicas, q.desired)

	if vs, present := a.header[http.CanonicalHeaderKey(protocol.HeaderClassesConfirmed)]; present {
		h := strings.Join(vs, ", ")
		counts, err := protocol.ParseConfirmed(h)
		if err != nil {
			warn("%v; not tracking classes", err)
		} else {
			for c, n := range counts {
				if n > q.desired {
					warn("%s says %s=%d, more than the %d asked for; counting %d", protocol.HeaderClassesConfirmed, short(c), n, q.desired, q.desired)
					counts[c] = q.desired
				}
			}
			o.classes = counts
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
