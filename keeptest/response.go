package keeptest

import (
	"net/http"
	"time"
)

// Request is the record of one request received by a Server.
type Request struct {
	// Seq is the request's arrival order across the whole cluster,
	// counting from 1.
	Seq int
	// Server is the UUID of the server that received the request.
	Server string
	// Method is the HTTP method, e.g. "PUT".
	Method string
	// Path is the URL path, e.g. "/acbd18db4cc2f85cedef654fccc4a4d8+3".
	Path string
	// Header is a copy of the request headers as the server received
	// them, including Expect, Authorization, X-Keep-Desired-Replicas,
	// X-Keep-Storage-Classes and X-Request-Id.
	Header http.Header
	// Status is the status code the server answered, or 0 while the
	// request is in progress and when it got no answer (stalled, reset,
	// or abandoned by the client during a delay). A GET that stalled
	// after sending its header (Response.StallAfter > 0) has Status 200.
	Status int
	// BodyRead is the number of request body bytes the server has read.
	// It stays 0 for uploads refused before reading, so a client that
	// sends Expect: 100-continue never transmitted the body.
	BodyRead int64
	// Time is when the request arrived.
	Time time.Time
	// Done is when the server answered, or zero when it did not.
	Done time.Time
}

// Response scripts how a Server answers one request (see Server.Script,
// Server.ScriptGet and Server.SetDefault). The zero Response means normal
// behaviour. The steps happen in this order: Delay, then Hold, then
// Reset, then Stall, then Status, then normal processing (at Rate).
type Response struct {
	// Status, if non-zero and not 200, is answered at once with Body as
	// the text, without reading the request body, so a client that sent
	// Expect: 100-continue never sends it.
	// With Status 200 (or 0) the request is handled normally; a non-empty
	// Body then replaces the normal response body: the locator text for a
	// PUT (the block is still checked and stored), the block data for a GET.
	Status int
	// Body is the response text for a scripted Status, or the
	// replacement body with Status 200.
	Body string
	// Header holds extra response headers, e.g. Retry-After. They are
	// added to whatever answer the request gets. (Servers also echo the
	// request's X-Request-Id.)
	Header http.Header
	// Replicas, if non-zero, replaces the server's X-Keep-Replicas-Stored
	// value for this answer; negative omits the header.
	Replicas int
	// Delay is how long to wait before doing anything else. The wait ends
	// early, with no answer, if the client goes away or the cluster closes.
	Delay time.Duration
	// Hold, if not nil, makes the server wait until it is closed before
	// doing anything else (after Delay), so before reading any of a PUT
	// body: the test decides when the answer comes,
	// so that answers of several servers arrive in a chosen order without
	// timing. Server.WaitHeld tells when a request has got there. The
	// wait ends early, with no answer, if the client goes away or the
	// cluster closes.
	Hold <-chan struct{}
	// Stall makes the server stop without answering until the client
	// disconnects or the cluster closes; the handler then ends and the
	// connection is closed. For a PUT it first reads StallAfter bytes of
	// the request body (0: none) and then reads no more, so a large upload
	// blocks. For a GET or HEAD with StallAfter 0 it sends nothing at all;
	// with StallAfter > 0 it sends the 200 header and, for a GET, the
	// first StallAfter bytes of the block (keep it below the block size).
	//
	// The server notices a client hang-up while it is not reading the
	// body by polling the TCP state, which works on Linux only; elsewhere
	// such a stall or Delay ends only when the cluster closes.
	Stall bool
	// StallAfter is the number of body bytes transferred before a Stall.
	StallAfter int64
	// Reset closes the connection with a TCP reset (SO_LINGER 0) without
	// answering.
	Reset bool
	// Rate, if positive, limits how fast the server reads a PUT body or
	// writes a GET body, in bytes per second: a slow server.
	Rate int64
}

// scriptedStatus reports whether r answers a fixed non-200 status.
func (r Response) scriptedStatus() bool {
	return r.Status != 0 && r.Status != http.StatusOK
}
