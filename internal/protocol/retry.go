package protocol

import "net/http"

// The status contract between a client and the servers and proxies it
// writes to: which answers it tries again (Retryable), and which answer a
// proxy gives for the answers of the servers behind it (ProxyStatus), so
// that a client's rule reads the proxy as it would read those servers.

// BusyRetryAfter is the Retry-After, in seconds, that marks a 503 as busy
// rather than full: a block server and a proxy send it with every 503
// they answer, which always means busy (full is 507).
const BusyRetryAfter = "1"

// StatusClientClosedRequest is the status a server logs for a request
// whose client went away before the answer (nginx's 499); the client
// never sees it.
const StatusClientClosedRequest = 499

// Retryable reports whether a client may try a failed request again, on
// the same service in a later pass: network errors (status 0) and
// timeouts, 408, 429, and every 5xx except 507 and a 503 without
// Retry-After, both of which mean the server is full. busy reports
// whether the answer carried a usable Retry-After.
func Retryable(status int, busy bool) bool {
	switch {
	case status == 0, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return true
	case status == http.StatusServiceUnavailable:
		return busy
	case status == http.StatusInsufficientStorage:
		return false
	default:
		return status >= 500 && status <= 599
	}
}

// Answer is one server's last answer to a write a proxy made on a
// client's behalf: its status (0 when none arrived) and whether the
// write would try the server again, as Retryable and the client's own
// knowledge (an upload abandoned for lag, an untrusted certificate)
// judged it. By Retryable, a 503 that may be retried was busy and one
// that may not was full.
type Answer struct {
	Status    int
	Retryable bool
}

// ProxyFailure is how a GET, HEAD or PUT that a proxy passed on to the
// servers behind it failed, as far as the status it answers depends on
// it.
type ProxyFailure struct {
	// NotFound: a read every server answered 404.
	NotFound bool
	// Canceled: the client went away during a write, before the write
	// had answers from its servers to report.
	Canceled bool
	// Answers holds the last answer of every server a write that stored
	// nothing tried; none for a read, or for a write that tried none.
	Answers []Answer
}

// ProxyStatus returns the status a proxy answers for f, and the
// Retry-After to send with it ("" for none). A read answers 404 when
// every server did, else 502. A write that stored nothing answers 503
// with Retry-After (busy: retried after the delay) when some server was
// busy, 507 (full: not retried) when every server was full (507, or a
// 503 not to be retried), else 502 (retried); StatusClientClosedRequest
// when its client went away before any server answered. So a client
// applying Retryable to the proxy's answer retries a write that a busy
// server, a failing one or the network stopped, and gives up on one
// that only full servers refused, as it would writing to them itself.
func ProxyStatus(f ProxyFailure) (status int, retryAfter string) {
	switch {
	case f.NotFound:
		return http.StatusNotFound, ""
	case len(f.Answers) == 0 && f.Canceled:
		return StatusClientClosedRequest, ""
	case len(f.Answers) == 0:
		return http.StatusBadGateway, ""
	}
	full := true
	for _, a := range f.Answers {
		switch {
		case a.Status == http.StatusServiceUnavailable && a.Retryable:
			return http.StatusServiceUnavailable, BusyRetryAfter
		case a.Status == http.StatusServiceUnavailable, a.Status == http.StatusInsufficientStorage:
		default:
			full = false
		}
	}
	if full {
		return http.StatusInsufficientStorage, ""
	}
	return http.StatusBadGateway, ""
}
