package keepclient

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// Errors that mark a server's answer as wrong rather than unlucky: the
// server is not asked again within the same read.
var (
	errChecksum = errors.New("checksum mismatch")
	errSize     = errors.New("wrong size")
)

// Get reads the block named by loc, trying services in order (those named
// by +K hints first, then the rest in probe order) and moving on after a
// 404, a failure or a corrupt body. Each body is verified against the
// block hash as it arrives. buf, if large enough, holds the result.
// When every service answers 404 the error is a *NotFoundError;
// otherwise failures are reported in a *ReadError.
func (c *Client) Get(ctx context.Context, loc locator.Locator, buf []byte) ([]byte, error) {
	return c.GetWithProgress(ctx, loc, buf, nil)
}

// GetWithProgress is Get, calling progress (if not nil) with the number of
// bytes received as they arrive. Bytes of an answer that turns out bad
// and is read again from another service are counted again.
func (c *Client) GetWithProgress(ctx context.Context, loc locator.Locator, buf []byte, progress func(n int)) ([]byte, error) {
	var data []byte
	err := c.read(ctx, http.MethodGet, loc, func(resp *http.Response, wd *watchdog) error {
		var err error
		data, err = readVerified(resp, loc, buf, wd, progress)
		return err
	})
	return data, err
}

// GetTo reads the block named by loc as Get does, but writes its content
// to w at off as it arrives, through a buffer of 1 MiB, instead of
// holding the whole block in memory: for writing a file, where a 64 MiB
// buffer would be one more copy of every byte to fault in and write out.
// Each answer is verified against the block hash when it ends, and what
// an answer that turns out bad wrote is overwritten by the next
// service's. It returns the block's size. When GetTo fails, w holds
// partial or unverified content in [off, off+size): the caller must not
// keep it.
func (c *Client) GetTo(ctx context.Context, loc locator.Locator, w io.WriterAt, off int64, progress func(n int)) (int64, error) {
	var size int64
	var buf []byte
	err := c.read(ctx, http.MethodGet, loc, func(resp *http.Response, wd *watchdog) error {
		if buf == nil {
			buf = make([]byte, streamChunk)
		}
		var err error
		size, err = readBody(resp, loc, wd, progress, &writerAtSink{w: w, base: off, buf: buf})
		return err
	})
	return size, err
}

// Head reports the size of the block named by loc, asking services in the
// same order as Get.
func (c *Client) Head(ctx context.Context, loc locator.Locator) (int64, error) {
	var size int64
	err := c.read(ctx, http.MethodHead, loc, func(resp *http.Response, _ *watchdog) error {
		size = resp.ContentLength
		if size < 0 {
			size = loc.Size
		}
		if size < 0 {
			return errors.New("no Content-Length")
		}
		if size > locator.MaxBlockSize {
			return fmt.Errorf("%w: Content-Length %d is more than a block can hold", errSize, size)
		}
		if loc.Size >= 0 && size != loc.Size {
			return fmt.Errorf("%w: Content-Length %d, locator says %d", errSize, size, loc.Size)
		}
		return nil
	})
	return size, err
}

// read runs the read passes shared by Get and Head; accept consumes a
// 200 response and reports whether its content was good.
func (c *Client) read(ctx context.Context, method string, loc locator.Locator, accept func(*http.Response, *watchdog) error) error {
	if loc.Hash == locator.EmptyHash && loc.Size <= 0 {
		return nil
	}
	reqID := protocol.NewRequestID()
	plan := newReadPlan(readOrder(loc, c.svcs.get(), c.opts.RemoteClusters, c.down.demote), c.passRule())
	for {
		for i, ok := plan.next(); ok; i, ok = plan.next() {
			r, err := c.readOne(ctx, method, plan.svcs[i], loc, reqID, accept)
			if err == nil {
				return nil
			}
			if we := (*writeError)(nil); errors.As(err, &we) {
				// Where the block goes failed, not the server.
				return fmt.Errorf("writing block %s: %w", loc.Bare(), we.err)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("reading block %s: %w", loc.Bare(), context.Cause(ctx))
			}
			plan.record(i, r)
		}
		d, ok := plan.again()
		if !ok {
			return plan.err(loc)
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("reading block %s: %w", loc.Bare(), context.Cause(ctx))
		}
		if c.opts.Refresh != nil {
			c.refresh(ctx)
			plan.add(readOrder(loc, c.svcs.get(), c.opts.RemoteClusters, c.down.demote))
		}
		if !plan.newPass() {
			return plan.err(loc)
		}
	}
}

// readOne makes one GET or HEAD request to s.
func (c *Client) readOne(ctx context.Context, method string, s Service, loc locator.Locator, reqID string, accept func(*http.Response, *watchdog) error) (ServiceResult, error) {
	fail := func(status int, msg string, retryable bool) (ServiceResult, error) {
		return ServiceResult{Service: s, Status: status, Message: msg, Retryable: retryable}, errors.New(msg)
	}
	if err := c.acquire(ctx); err != nil {
		return fail(0, err.Error(), false)
	}
	defer c.release()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(c.stallFor(s), cancel)
	defer wd.stop()

	req, err := http.NewRequestWithContext(ctx, method, s.URL()+"/"+loc.String(), nil)
	if err != nil {
		return fail(0, err.Error(), false)
	}
	c.setCommonHeaders(req, reqID)
	if tok, err := c.tokenFor(s); err != nil {
		return fail(0, err.Error(), false)
	} else if tok != c.opts.Token {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.httpFor(s).Do(req)
	c.down.note(s.URL(), err)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = cause
		}
		return fail(0, transportMessage(err), !isCertError(err))
	}
	defer resp.Body.Close()
	wd.kick()
	if resp.StatusCode != http.StatusOK {
		text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fail(resp.StatusCode, firstLine(text), readRetryable(resp.StatusCode))
	}
	if err := accept(resp, wd); err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return ServiceResult{Service: s, Status: http.StatusOK, Message: err.Error()}, we
		}
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = cause
		}
		// A corrupt or truncated body is this server's problem, not a
		// reason to stop: move on, and try it again only for network trouble.
		return fail(0, err.Error(), !errors.Is(err, errChecksum) && !errors.Is(err, errSize))
	}
	return ServiceResult{Service: s, Status: http.StatusOK}, nil
}

// streamChunk is the size of the reads of a GET body.
const streamChunk = 1 << 20

// A bodySink is where readBody puts a block's content as it arrives.
type bodySink interface {
	// start is called once the size is known and checked.
	start(size int64)
	// next returns where the n bytes at off in the block are to be read.
	next(off int64, n int) []byte
	// filled is called once they are there.
	filled(p []byte, off int64) error
}

// bufferSink holds the block in buf, grown if needed.
type bufferSink struct{ buf []byte }

func (s *bufferSink) start(size int64) {
	if int64(cap(s.buf)) < size {
		s.buf = make([]byte, size)
	}
	s.buf = s.buf[:size]
}
func (s *bufferSink) next(off int64, n int) []byte     { return s.buf[off : off+int64(n)] }
func (s *bufferSink) filled(p []byte, off int64) error { return nil }

// writerAtSink writes the block to w at base through buf.
type writerAtSink struct {
	w    io.WriterAt
	base int64
	buf  []byte
}

func (s *writerAtSink) start(int64)                  {}
func (s *writerAtSink) next(off int64, n int) []byte { return s.buf[:n] }
func (s *writerAtSink) filled(p []byte, off int64) error {
	if _, err := s.w.WriteAt(p, s.base+off); err != nil {
		return &writeError{err}
	}
	return nil
}

// writeError is a failure to write what was read: the reader's, not the
// server's, so no other server is tried.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// readVerified reads a GET body into buf (grown if needed), hashing as it
// goes, and checks size and MD5 against loc.
func readVerified(resp *http.Response, loc locator.Locator, buf []byte, wd *watchdog, progress func(int)) ([]byte, error) {
	s := &bufferSink{buf: buf}
	if _, err := readBody(resp, loc, wd, progress, s); err != nil {
		return nil, err
	}
	return s.buf, nil
}

// readBody reads a GET body into sink in chunks, hashing as it goes, and
// checks size and MD5 against loc. It returns the size.
func readBody(resp *http.Response, loc locator.Locator, wd *watchdog, progress func(int), sink bodySink) (int64, error) {
	size := resp.ContentLength
	switch {
	case size < 0 && loc.Size < 0:
		return 0, errors.New("Content-Length missing and locator has no size")
	case size < 0:
		size = loc.Size
	case loc.Size >= 0 && size != loc.Size:
		return 0, fmt.Errorf("%w: Content-Length %d, locator says %d", errSize, size, loc.Size)
	}
	if size > locator.MaxBlockSize {
		return 0, fmt.Errorf("Content-Length %d exceeds the maximum block size", size)
	}
	sink.start(size)
	h := md5.New()
	for off := int64(0); off < size; {
		p := sink.next(off, int(min(streamChunk, size-off)))
		n, err := io.ReadFull(resp.Body, p)
		h.Write(p[:n])
		if n > 0 {
			if werr := sink.filled(p[:n], off); werr != nil {
				return 0, werr
			}
		}
		off += int64(n)
		wd.kick()
		if progress != nil && n > 0 {
			progress(n)
		}
		if err != nil {
			return 0, fmt.Errorf("body ended after %d of %d bytes: %w", off, size, err)
		}
	}
	if n, _ := resp.Body.Read(make([]byte, 1)); n > 0 {
		return 0, fmt.Errorf("%w: body longer than %d bytes", errSize, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != loc.Hash {
		return 0, fmt.Errorf("%w: got md5 %s", errChecksum, got)
	}
	return size, nil
}
