package keepproxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/keepproject/keep/internal/protocol"
)

// pacer is the low-speed rule for one request body or response body, as
// curl's low-speed limit: from the start, every quantum bytes (MinRate ×
// RateWindow) must move within window of the moment the previous quantum
// was complete. The first window is the grace period. A transfer at
// MinRate or faster never trips it, however long the block; one that
// stalls or trickles is cut off within a window. It is pure: the time is
// passed in.
type pacer struct {
	quantum int64
	window  time.Duration
	mark    time.Time // start of the current window
	moved   int64     // bytes moved since mark
}

func newPacer(minRate int64, window time.Duration, start time.Time) pacer {
	q := int64(float64(minRate) * window.Seconds())
	return pacer{quantum: max(q, 1), window: window, mark: start}
}

// deadline is when the current window ends.
func (p *pacer) deadline() time.Time { return p.mark.Add(p.window) }

// progress records n bytes moved at now and reports whether a quantum
// was completed, so that the deadline moved.
func (p *pacer) progress(n int, now time.Time) bool {
	p.moved += int64(n)
	if p.moved < p.quantum {
		return false
	}
	p.mark, p.moved = now, 0
	return true
}

// errSlow is returned by a paced body whose client fell below the
// minimum rate.
var errSlow = errors.New("request body arrived too slowly")

// pacedBody reads a request body under the low-speed rule, moving the
// connection's read deadline as quanta arrive. Where the connection has
// no deadlines (an httptest.ResponseRecorder) it reads unpaced.
type pacedBody struct {
	r    io.Reader
	rc   *http.ResponseController
	pace pacer
	// first is called once, after the first bytes arrive.
	first func()
}

func (b *pacedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if b.first != nil {
			b.first()
			b.first = nil
		}
		if b.pace.progress(n, time.Now()) {
			b.rc.SetReadDeadline(b.pace.deadline())
		}
	}
	if err != nil && protocol.IsTimeout(err) {
		err = fmt.Errorf("%w: under %d bytes in %v", errSlow, b.pace.quantum, b.pace.window)
	}
	return n, err
}

// writeChunk is the most a response writes under one deadline check.
const writeChunk = 64 << 10

// respWriter records the status for the log and applies the low-speed
// rule to the response, so that a client that stops reading cannot hold
// a read slot and its buffer.
type respWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	status  int
	started bool
	minRate int64
	window  time.Duration
	pace    pacer
	cut     bool // a write failed on the deadline: the client fell behind
}

func (w *respWriter) WriteHeader(code int) {
	if w.started {
		return
	}
	w.started, w.status = true, code
	w.pace = newPacer(w.minRate, w.window, time.Now())
	w.rc.SetWriteDeadline(w.pace.deadline())
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	total := 0
	for len(b) > 0 {
		n, err := w.ResponseWriter.Write(b[:min(len(b), writeChunk)])
		total += n
		b = b[n:]
		if err != nil {
			w.cut = w.cut || protocol.IsTimeout(err)
			return total, err
		}
		if w.pace.progress(n, time.Now()) {
			w.rc.SetWriteDeadline(w.pace.deadline())
		}
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
