package keepclient

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"time"

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
	var data []byte
	err := c.read(ctx, http.MethodGet, loc, func(resp *http.Response, wd *watchdog) error {
		var err error
		data, err = readVerified(resp, loc, buf, wd)
		return err
	})
	return data, err
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
		if loc.Size >= 0 && size != loc.Size {
			return fmt.Errorf("%w: Content-Length %d, locator says %d", errSize, size, loc.Size)
		}
		return nil
	})
	return size, err
}

// readOrder lists the services to read loc from: those named by +K hints
// in hint order, then readable services in probe order.
func (c *Client) readOrder(loc locator.Locator) []Service {
	all := c.svcs.get()
	seen := make(map[string]bool)
	var out []Service
	add := func(s Service) {
		if !seen[s.URL()] {
			seen[s.URL()] = true
			out = append(out, s)
		}
	}
	for _, h := range loc.HintsWithPrefix("K@") {
		if len(h) == 5 {
			add(Service{UUID: h, Host: "keep." + h + ".arvadosapi.com", Port: 443, TLS: true, Type: TypeProxy})
			continue
		}
		for _, s := range all {
			if s.UUID == h {
				add(s)
			}
		}
	}
	var readable []Service
	for _, s := range all {
		if !s.IsGateway() {
			readable = append(readable, s)
		}
	}
	for _, s := range c.down.demote(ProbeOrder(loc.Hash, readable)) {
		add(s)
	}
	return out
}

// read runs the read passes shared by Get and Head; accept consumes a
// 200 response and reports whether its content was good.
func (c *Client) read(ctx context.Context, method string, loc locator.Locator, accept func(*http.Response, *watchdog) error) error {
	if loc.Hash == locator.EmptyHash && loc.Size <= 0 {
		return nil
	}
	reqID := newRequestID()
	svcs := c.readOrder(loc)
	last := make(map[string]ServiceResult)
	retry := make(map[string]bool) // services worth another pass
	for _, s := range svcs {
		retry[s.URL()] = true
	}
	delay := c.opts.RetryDelay
	pass := 1
	for ; ; pass++ {
		for _, s := range svcs {
			if !retry[s.URL()] {
				continue
			}
			r, err := c.readOne(ctx, method, s, loc, reqID, accept)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return fmt.Errorf("keepclient: reading %s: %w", loc.Bare(), context.Cause(ctx))
			}
			last[s.URL()] = r
			retry[s.URL()] = r.Retryable
		}
		more := false
		for _, s := range svcs {
			more = more || retry[s.URL()]
		}
		if pass >= c.opts.MaxPasses || (!more && c.opts.Refresh == nil) {
			break
		}
		t := time.NewTimer(time.Millisecond + mrand.N(delay))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("keepclient: reading %s: %w", loc.Bare(), context.Cause(ctx))
		}
		delay = min(2*delay, 10*c.opts.RetryDelay)
		if c.opts.Refresh != nil {
			c.refresh(ctx)
			for _, s := range c.readOrder(loc) {
				if _, known := retry[s.URL()]; !known {
					svcs = append(svcs, s)
					retry[s.URL()] = true
					more = true
				}
			}
		}
		if !more {
			break
		}
	}
	results := make([]ServiceResult, 0, len(svcs))
	notFound := 0
	for _, s := range svcs {
		if r, ok := last[s.URL()]; ok {
			results = append(results, r)
			if r.Status == http.StatusNotFound {
				notFound++
			}
		}
	}
	if notFound > 0 && notFound == len(svcs) {
		return &NotFoundError{Locator: loc.Bare().String(), Services: len(svcs)}
	}
	return &ReadError{Locator: loc.Bare().String(), Passes: pass, Services: results}
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
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	}
	req.Header.Set("X-Request-Id", reqID)
	resp, err := c.httpFor(s).Do(req)
	c.down.note(s.URL(), err)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = cause
		}
		return fail(0, transportMessage(err), true)
	}
	defer resp.Body.Close()
	wd.kick()
	if resp.StatusCode != http.StatusOK {
		text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		st := resp.StatusCode
		return fail(st, firstLine(text), st == 0 || st == 408 || st == 429 || st >= 500)
	}
	if err := accept(resp, wd); err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			err = cause
		}
		// A corrupt or truncated body is this server's problem, not a
		// reason to stop: move on, and try it again only for network trouble.
		return fail(0, err.Error(), !errors.Is(err, errChecksum) && !errors.Is(err, errSize))
	}
	return ServiceResult{Service: s, Status: http.StatusOK}, nil
}

// readVerified reads a GET body into buf (grown if needed), hashing as it
// goes, and checks size and MD5 against loc.
func readVerified(resp *http.Response, loc locator.Locator, buf []byte, wd *watchdog) ([]byte, error) {
	size := resp.ContentLength
	switch {
	case size < 0 && loc.Size < 0:
		return nil, errors.New("Content-Length missing and locator has no size")
	case size < 0:
		size = loc.Size
	case loc.Size >= 0 && size != loc.Size:
		return nil, fmt.Errorf("%w: Content-Length %d, locator says %d", errSize, size, loc.Size)
	}
	if size > locator.MaxBlockSize {
		return nil, fmt.Errorf("Content-Length %d exceeds the maximum block size", size)
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	h := md5.New()
	const chunk = 1 << 20
	for off := 0; off < len(buf); {
		end := min(off+chunk, len(buf))
		n, err := io.ReadFull(resp.Body, buf[off:end])
		h.Write(buf[off : off+n])
		off += n
		wd.kick()
		if err != nil {
			return nil, fmt.Errorf("body ended after %d of %d bytes: %w", off, size, err)
		}
	}
	if n, _ := resp.Body.Read(make([]byte, 1)); n > 0 {
		return nil, fmt.Errorf("%w: body longer than %d bytes", errSize, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != loc.Hash {
		return nil, fmt.Errorf("%w: got md5 %s", errChecksum, got)
	}
	return buf, nil
}
