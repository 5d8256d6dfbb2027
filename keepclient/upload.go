package keepclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keepproject/keep/internal/protocol"
)

// errStalled is the cancellation cause of a request that made no progress.
var errStalled = errors.New("stalled")

// errReplaced is the cancellation cause of an upload replaced for lag.
var errReplaced = errors.New("replaced by an upload to the next service: lagging")

// errNotNeeded is the cancellation cause of an upload still running when
// its write had counted every replica wanted.
var errNotNeeded = errors.New("not needed: the write already counted every replica wanted")

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

// States of an upload's body. An upload moves from sending to exactly one
// of the others, once: complete when the transport is handed the last
// byte, aborted when the writer replaces it first, ended when its request
// ends (answered or failed) before either. So an aborted upload never
// delivered its whole body, and no server can have stored it; and an
// upload whose request has ended is never replaced: its outcome stands
// (a refused connection is a refusal, not a lag).
const (
	bodySending int32 = iota
	bodyComplete
	bodyAborted
	bodyEnded
)

// upload is one PUT of a block to one service: what the writer asked,
// and what its goroutine and the transport report back as it runs.
type upload struct {
	svc       Service
	hash      string
	src       *blockSource // shared by every upload of the block; read only
	requestID string
	desired   int // X-Keep-Desired-Replicas: the write's N
	classes   []string
	prog      *sendProgress // nil unless the caller wants progress

	begun  atomic.Int64 // UnixNano when the request started; 0 while it waits for a slot
	sent   atomic.Int64 // body bytes handed to the transport
	body   atomic.Int32 // bodySending, bodyComplete, bodyAborted or bodyEnded
	cancel context.CancelCauseFunc

	// Owned by the writer's goroutine.
	i        int  // service index in the plan when it started
	pass     int  // the write's pass when it started
	replaced bool // abandoned for lag
}

// progress reports what the writer needs to judge the upload for lag.
func (u *upload) progress(knownSlow bool) progress {
	var p progress
	if b := u.begun.Load(); b != 0 {
		p.begun = time.Unix(0, b)
	}
	p.sent = u.sent.Load()
	st := u.body.Load()
	p.complete = st == bodyComplete || st == bodyEnded
	p.knownSlow = knownSlow
	return p
}

// abort stops the upload if its body is not complete yet, and reports
// whether it did.
func (u *upload) abort() bool {
	if !u.body.CompareAndSwap(bodySending, bodyAborted) {
		return false
	}
	u.cancel(errReplaced)
	return true
}

// completeBody marks the body complete, or reports false if the upload
// was aborted first.
func (u *upload) completeBody() bool {
	return u.body.CompareAndSwap(bodySending, bodyComplete) || u.body.Load() == bodyComplete
}

// blockBody is an upload's request body: a read-only view of the block.
// The transport may go on reading it after the response has arrived (a
// server can answer before reading everything), so upload waits for the
// transport to close every body it was given before returning: the
// caller's buffer is never read after Put returns.
type blockBody struct {
	u       *upload
	off     int
	scratch []byte // for sending a file's block where sendfile cannot
	w       *watchdog
	once    sync.Once
	done    func() // marks the body closed in its upload's count
}

// newBlockBody returns a body for u's block, counted in open until closed.
func newBlockBody(u *upload, w *watchdog, open *sync.WaitGroup) *blockBody {
	open.Add(1)
	return &blockBody{u: u, w: w, done: open.Done}
}

func (b *blockBody) Read(p []byte) (int, error) {
	n, err := b.next(len(p))
	if err != nil {
		return 0, err
	}
	if err := b.u.src.readAt(p[:n], b.off); err != nil {
		return 0, err
	}
	b.advance(n)
	return n, nil
}

// writeTo writes at most limit bytes of the block, from where the body
// has got to, to w: straight from the caller's buffer (or file),
// sendChunk at a time, with the same rules as Read. It returns the bytes
// written; reaching the end of the block or the limit is success.
func (b *blockBody) writeTo(w io.Writer, limit int64) (int64, error) {
	var written int64
	for written < limit {
		n, err := b.next(int(min(int64(sendChunk), limit-written)))
		if err == io.EOF {
			break
		}
		if err != nil {
			return written, err
		}
		if err := b.u.src.sendTo(w, b.off, n, &b.scratch); err != nil {
			return written, err
		}
		b.advance(n)
		written += int64(n)
	}
	return written, nil
}

// next returns how many of the body's next bytes, at most max, may be
// handed over now: io.EOF at the end of the block, errReplaced once the
// upload has been replaced. The last byte is never handed over once
// replaced: taking it marks the body complete, after which it cannot be.
func (b *blockBody) next(max int) (int, error) {
	size := b.u.src.len()
	if b.off >= size {
		return 0, io.EOF
	}
	if b.u.body.Load() == bodyAborted {
		return 0, errReplaced
	}
	n := min(max, size-b.off)
	if b.off+n == size && !b.u.completeBody() {
		return 0, errReplaced
	}
	return n, nil
}

// advance records that n more bytes were handed over.
func (b *blockBody) advance(n int) {
	b.off += n
	b.u.sent.Store(int64(b.off))
	if b.u.prog != nil {
		b.u.prog.add(n)
	}
	b.w.kick()
}

// Close records that the transport is done with the body.
func (b *blockBody) Close() error {
	b.once.Do(b.done)
	return nil
}

// newUploadRequest builds the PUT for u. body returns a fresh reader of
// the block each time it is called: the transport may resend on a new
// connection.
func (c *Client) newUploadRequest(ctx context.Context, u *upload, body func() io.ReadCloser) (*http.Request, error) {
	first := body()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.svc.URL()+"/"+u.hash, first)
	if err != nil {
		first.Close()
		return nil, err
	}
	req.ContentLength = int64(u.src.len())
	// A PUT of content-addressed data is idempotent: let the transport
	// resend it on a fresh connection when a kept-alive one turns out to
	// have been closed by the server. (A nil header value marks the
	// request idempotent without sending a header.)
	req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
	req.Header["Idempotency-Key"] = nil
	req.Header.Set("Content-Type", "application/octet-stream")
	// A refusing server costs a round trip, not a block.
	req.Header.Set("Expect", "100-continue")
	c.setCommonHeaders(req, u.requestID)
	req.Header.Set(protocol.HeaderDesiredReplicas, strconv.Itoa(u.desired))
	if len(u.classes) > 0 {
		req.Header.Set(protocol.HeaderStorageClasses, protocol.FormatClasses(u.classes))
	}
	return req, nil
}

// setCommonHeaders adds the headers every request of the client carries.
func (c *Client) setCommonHeaders(req *http.Request, requestID string) {
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	req.Header.Set(protocol.HeaderRequestID, requestID)
}

// run sends u and interprets the answer. It never returns an error:
// failures are described in the outcome. It returns only once the
// transport has let go of the block.
func (u *upload) run(ctx context.Context, c *Client) outcome {
	if err := c.acquire(ctx); err != nil {
		return outcome{msg: transportMessage(context.Cause(ctx))}
	}
	defer c.release()
	start := time.Now()
	u.begun.Store(start.UnixNano())

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
	req, err := c.newUploadRequest(ctx, u, func() io.ReadCloser { return newBlockBody(u, wd, &open) })
	if err != nil {
		return outcome{msg: err.Error()}
	}
	resp, err := c.httpFor(u.svc).Do(req)
	// Before the service is marked down, which would make the upload
	// look like one to replace for lag.
	u.body.CompareAndSwap(bodySending, bodyEnded)
	c.down.note(u.svc.URL(), err)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) || errors.Is(cause, errReplaced) || errors.Is(cause, errNotNeeded) {
			err = cause
		}
		return outcome{msg: transportMessage(err), final: isCertError(err), elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	wd.kick()
	text, err := io.ReadAll(io.LimitReader(&progressReader{r: resp.Body, w: wd}, maxAnswer+1))
	if err != nil && resp.StatusCode == http.StatusOK {
		// The answer was cut short: the server may or may not have the
		// block, so count it as a network failure.
		return outcome{msg: "reading response: " + transportMessage(err), elapsed: time.Since(start)}
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: text, elapsed: time.Since(start)}
	if len(text) > maxAnswer {
		a.body, a.truncated = text[:maxAnswer], true
	}
	// Drain a little more so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	o, warnings := parseUpload(a, asked{hash: u.hash, size: int64(u.src.len()), maxRetryAfter: c.opts.MaxRetryAfter}, time.Now())
	for _, w := range warnings {
		c.log.Warn("untrusted answer: "+w, "service", u.svc.String(), "request_id", u.requestID)
	}
	return o
}

// transportMessage shortens a transport error to its useful part: the
// method and URL of a url.Error repeat what the caller already names.
func transportMessage(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if isCertError(err) {
		return "TLS certificate not trusted (set ARVADOS_API_HOST_INSECURE or install the CA, e.g. with SSL_CERT_FILE): " + err.Error()
	}
	return err.Error()
}

// isCertError reports whether err is a failure to verify a server's TLS
// certificate: trying again cannot help, and a user must hear of it at
// once.
func isCertError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}
