package keepclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errStalled is the cancellation cause of a request that made no progress.
var errStalled = errors.New("stalled")

// watchdog cancels a request when kick has not been called for d.
type watchdog struct {
	d       time.Duration
	t       *time.Timer
	stopped atomic.Bool
}

func newWatchdog(d time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() {
		cancel(fmt.Errorf("%w: no progress for %v", errStalled, d))
	})
	return w
}

func (w *watchdog) kick() {
	if !w.stopped.Load() {
		w.t.Reset(w.d)
	}
}

func (w *watchdog) stop() {
	w.stopped.Store(true)
	w.t.Stop()
}

// progressReader kicks a watchdog on every read.
type progressReader struct {
	r io.Reader
	w *watchdog
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.kick()
	}
	return n, err
}

// blockBody is an upload's request body: a read-only view of the block
// shared by all its uploads. The transport may go on reading it after the
// response has arrived (a server can answer before reading everything),
// so upload waits for the transport to close every body it was given
// before returning: the caller's buffer is never read after Put returns.
type blockBody struct {
	data []byte
	off  int
	w    *watchdog
	sent *atomic.Int64 // bytes handed to the transport, for the writer
	once sync.Once
	done func() // marks the body closed in its upload's count
}

// newBlockBody returns a body for data counted in open until closed.
func newBlockBody(data []byte, w *watchdog, sent *atomic.Int64, open *sync.WaitGroup) *blockBody {
	open.Add(1)
	return &blockBody{data: data, w: w, sent: sent, done: open.Done}
}

func (b *blockBody) Read(p []byte) (int, error) {
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:])
	b.off += n
	b.sent.Store(int64(b.off))
	b.w.kick()
	return n, nil
}

// Close records that the transport is done with the body.
func (b *blockBody) Close() error {
	b.once.Do(b.done)
	return nil
}

// uploadRequest is one PUT of a block to one service.
type uploadRequest struct {
	svc       Service
	hash      string
	data      []byte // shared by every upload of the block; read only
	requestID string
	desired   int
	classes   []string
	progress  *inflight // updated as the upload starts and sends; may be nil
}

// upload sends one PUT and interprets the answer. It never returns an
// error: failures are described in the outcome.
func (c *Client) upload(ctx context.Context, u uploadRequest) outcome {
	if err := c.acquire(ctx); err != nil {
		return outcome{msg: err.Error()}
	}
	defer c.release()
	progress := u.progress
	if progress == nil {
		progress = new(inflight)
	}
	progress.begun.Store(time.Now().UnixNano())

	ctx, cancel := context.WithCancelCause(ctx)
	wd := newWatchdog(c.stallFor(u.svc), cancel)
	var open sync.WaitGroup // bodies the transport has not closed yet
	defer func() {
		// Cancelling ends a body write still in progress; then wait
		// for the transport to let go of the caller's buffer.
		cancel(nil)
		open.Wait()
		wd.stop()
	}()
	var body io.ReadCloser = http.NoBody
	if len(u.data) > 0 {
		body = newBlockBody(u.data, wd, &progress.sent, &open)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.svc.URL()+"/"+u.hash, body)
	if err != nil {
		body.Close()
		return outcome{msg: err.Error()}
	}
	req.ContentLength = int64(len(u.data))
	if len(u.data) > 0 {
		// A PUT of content-addressed data is idempotent: let the
		// transport resend it on a fresh connection when a kept-alive one
		// turns out to have been closed by the server. (A nil header
		// value marks the request idempotent without sending a header.)
		req.GetBody = func() (io.ReadCloser, error) {
			return newBlockBody(u.data, wd, &progress.sent, &open), nil
		}
		req.Header["Idempotency-Key"] = nil
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if len(u.data) > 0 {
		req.Header.Set("Expect", "100-continue")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	req.Header.Set("X-Request-Id", u.requestID)
	req.Header.Set("X-Keep-Desired-Replicas", strconv.Itoa(u.desired))
	if len(u.classes) > 0 {
		req.Header.Set("X-Keep-Storage-Classes", strings.Join(u.classes, ", "))
	}

	resp, err := c.httpFor(u.svc).Do(req)
	c.down.note(u.svc.URL(), err)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = cause
		}
		return outcome{msg: transportMessage(err)}
	}
	defer resp.Body.Close()
	wd.kick()
	text, err := io.ReadAll(io.LimitReader(&progressReader{r: resp.Body, w: wd}, 4096))
	if err != nil && resp.StatusCode == http.StatusOK {
		// The answer was cut short: the server may or may not have the
		// block, so count it as a network failure.
		return outcome{msg: "reading response: " + transportMessage(err)}
	}
	// Drain a little more so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))

	o := outcome{status: resp.StatusCode, msg: firstLine(text)}
	if resp.StatusCode == http.StatusServiceUnavailable {
		o.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if o.retryAfter > c.opts.MaxRetryAfter {
			// Busy for longer than the caller will wait: as good as full.
			o.msg = fmt.Sprintf("busy for %v (Retry-After), longer than MaxRetryAfter %v: %s", o.retryAfter, c.opts.MaxRetryAfter, o.msg)
			o.retryAfter = 0
		}
	}
	if resp.StatusCode != http.StatusOK {
		return o
	}
	o.locator = strings.TrimSpace(string(text))
	o.msg = ""
	o.replicas = 1
	if h := resp.Header.Get("X-Keep-Replicas-Stored"); h != "" {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || n < 0 {
			c.log.Warn("malformed X-Keep-Replicas-Stored; counting 1", "service", u.svc.String(), "value", h)
		} else {
			o.replicas = n
		}
	}
	o.classes = resp.Header.Get("X-Keep-Storage-Classes-Confirmed")
	_, o.hasClasses = resp.Header["X-Keep-Storage-Classes-Confirmed"]
	return o
}

// transportMessage shortens a transport error to its useful part: the
// method and URL of a url.Error repeat what the caller already names.
func transportMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

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

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
// It returns 0 when the header is absent or unusable, and at least one
// millisecond when present, so that its presence alone marks a 503 as busy.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	const longest = 24 * time.Hour // also keeps the multiplication from overflowing
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return max(time.Duration(min(n, int(longest/time.Second)))*time.Second, time.Millisecond)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(t.Sub(now), time.Millisecond), longest)
	}
	return 0
}

func sortStrings(s []string) { sort.Strings(s) }
