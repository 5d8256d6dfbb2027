package keepstore

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/keepproject/keep/internal/protocol"
)

// longAgo is a read deadline in the past: a pending read fails at once.
var longAgo = time.Unix(1, 0)

// slowUploadError is why an upload was cut off for arriving too slowly.
// The PUT handler answers it with 408 and closes the connection.
type slowUploadError struct {
	received int64
	waited   time.Duration
	rate     int64
	grace    time.Duration
	evicted  bool // cut to free its slot for another upload
}

func (e *slowUploadError) Error() string {
	waited := e.waited.Round(time.Millisecond)
	if e.evicted {
		return fmt.Sprintf("upload cut off: %d bytes arrived in %v, slower than %d bytes/s, and another upload needed its slot",
			e.received, waited, e.rate)
	}
	return fmt.Sprintf("upload too slow: %d bytes arrived in %v; after the first %v the body must average at least %d bytes/s",
		e.received, waited, e.grace, e.rate)
}

// isSlowUpload reports whether err comes from an upload cut off for its
// rate, and whether it was evicted.
func isSlowUpload(err error) (slow, evicted bool) {
	var e *slowUploadError
	if errors.As(err, &e) {
		return true, e.evicted
	}
	return false, false
}

// upload is one PUT body as it arrives, held to the minimum upload rate.
//
// The rule: the time the server spends waiting for body bytes may not
// exceed grace + received/rate. Only time spent inside the body's Read
// counts, so a server slowed by its own disks never blames the client.
// Before each Read the connection's read deadline is set to when the
// allowance runs out, so a stalled client is cut off on time even if it
// sends nothing more; where the connection has no deadlines (an
// httptest.ResponseRecorder) the rule is checked after each Read.
//
// An upload blocked in Read and behind the rate (grace aside) may be
// evicted by the write slots: its pending Read fails at once.
type upload struct {
	body  io.Reader
	rc    *http.ResponseController
	rate  int64 // bytes per second; 0 means no minimum
	grace time.Duration

	mu        sync.Mutex // protects the fields below
	checked   bool       // whether deadlines is known
	deadlines bool       // rc can set the connection's read deadline
	n         int64      // bytes received
	waited    time.Duration
	readStart time.Time // start of the Read in progress; zero between reads
	finished  bool      // the body ended or failed
	evicted   bool
}

func newUpload(w http.ResponseWriter, body io.Reader, rate int64, grace time.Duration) *upload {
	return &upload{body: body, rc: http.NewResponseController(w), rate: max(rate, 0), grace: grace}
}

// perByte returns the waiting that n bytes earn at the minimum rate.
func (u *upload) perByte(n int64) time.Duration {
	return time.Duration(float64(n) / float64(u.rate) * float64(time.Second))
}

// slowErr describes the upload's failure; u.mu must be held.
func (u *upload) slowErr() error {
	return &slowUploadError{received: u.n, waited: u.waited, rate: u.rate, grace: u.grace, evicted: u.evicted}
}

// Read implements io.Reader.
func (u *upload) Read(p []byte) (int, error) {
	if u.rate == 0 {
		return u.body.Read(p)
	}
	u.mu.Lock()
	if u.evicted {
		defer u.mu.Unlock()
		return 0, u.slowErr()
	}
	budget := u.grace + u.perByte(u.n) - u.waited
	if budget <= 0 {
		defer u.mu.Unlock()
		return 0, u.slowErr()
	}
	now := time.Now()
	if !u.checked || u.deadlines {
		err := u.rc.SetReadDeadline(now.Add(budget))
		if !u.checked {
			u.checked, u.deadlines = true, err == nil
		}
	}
	u.readStart = now
	u.mu.Unlock()

	n, err := u.body.Read(p)

	u.mu.Lock()
	defer u.mu.Unlock()
	u.waited += time.Since(u.readStart)
	u.readStart = time.Time{}
	u.n += int64(n)
	switch {
	case err == nil:
		if !u.deadlines && u.waited > u.grace+u.perByte(u.n) {
			u.finished = true
			return n, u.slowErr()
		}
	case err == io.EOF:
		u.finished = true
		if u.deadlines {
			// The body is in. Nothing more is read for this request, and
			// the response is one short line that never blocks, so lift
			// the deadlines: a whole-request timeout of the http.Server
			// must not cut off an upload that kept to the rate. net/http
			// sets them afresh for the next request on the connection.
			u.rc.SetReadDeadline(time.Time{})
			u.rc.SetWriteDeadline(time.Time{})
		}
	case u.evicted || (u.deadlines && protocol.IsTimeout(err)):
		u.finished = true
		return n, u.slowErr()
	default:
		u.finished = true
	}
	return n, err
}

// behind returns how far the upload has fallen behind the minimum rate,
// not counting the grace period, if it is blocked in Read and can be
// evicted; otherwise ok is false.
func (u *upload) behind(now time.Time) (d time.Duration, ok bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.rate == 0 || !u.deadlines || u.evicted || u.finished || u.readStart.IsZero() {
		return 0, false
	}
	return u.waited + now.Sub(u.readStart) - u.perByte(u.n), true
}

// evict makes the upload's pending Read fail at once with a
// slowUploadError. It reports false if the upload is no longer blocked
// in Read.
func (u *upload) evict() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.evicted || u.finished || u.readStart.IsZero() {
		return false
	}
	u.evicted = true
	u.rc.SetReadDeadline(longAgo)
	return true
}
