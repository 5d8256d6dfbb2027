package protocol

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		status int
		busy   bool
		want   bool
	}{
		{0, false, true},
		{408, false, true},
		{429, false, true},
		{500, false, true},
		{502, false, true},
		{504, false, true},
		{503, false, false},
		{503, true, true},
		{507, false, false},
		{507, true, false},
		{400, false, false},
		{401, false, false},
		{404, false, false},
		{413, false, false},
		{499, false, false},
		{200, false, false},
		{600, false, false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.status, tt.busy); got != tt.want {
			t.Errorf("Retryable(%d, busy %v) = %v", tt.status, tt.busy, got)
		}
	}
}

func TestProxyStatus(t *testing.T) {
	busy := Answer{Status: 503, Retryable: true}
	full := Answer{Status: 507}
	fullish := Answer{Status: 503} // no usable Retry-After: full
	failing := Answer{Status: 500, Retryable: true}
	down := Answer{Retryable: true}
	tests := []struct {
		name       string
		f          ProxyFailure
		status     int
		retryAfter string
	}{
		{"read: every server said 404", ProxyFailure{NotFound: true}, 404, ""},
		{"read: anything else", ProxyFailure{}, 502, ""},
		{"write: client went away", ProxyFailure{Canceled: true}, 499, ""},
		{"write: no writable server", ProxyFailure{}, 502, ""},
		{"write: all full", ProxyFailure{Answers: []Answer{full, fullish, full}}, 507, ""},
		{"write: one busy", ProxyFailure{Answers: []Answer{full, busy, failing}}, 503, "1"},
		{"write: busy after a failure", ProxyFailure{Answers: []Answer{failing, down, busy}}, 503, "1"},
		{"write: full and failing", ProxyFailure{Answers: []Answer{full, failing}}, 502, ""},
		{"write: full and down", ProxyFailure{Answers: []Answer{down, full}}, 502, ""},
		{"write: an untrusted certificate", ProxyFailure{Answers: []Answer{{}}}, 502, ""},
		{"write: the token refused", ProxyFailure{Answers: []Answer{{Status: 403}, {Status: 401}}}, 502, ""},
		{"write: a success that counted for nothing", ProxyFailure{Answers: []Answer{{Status: 200}, full}}, 502, ""},
		{"write: answers count, not the client going away", ProxyFailure{Canceled: true, Answers: []Answer{full}}, 507, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, ra := ProxyStatus(tt.f)
			if status != tt.status || ra != tt.retryAfter {
				t.Errorf("ProxyStatus(%+v) = %d, %q; want %d, %q", tt.f, status, ra, tt.status, tt.retryAfter)
			}
			// Retry-After goes with every 503, and with nothing else.
			if (status == http.StatusServiceUnavailable) != (ra != "") {
				t.Errorf("status %d with Retry-After %q", status, ra)
			}
		})
	}
}

// A client reads a proxy's answer for a write to one server as it would
// read that server's answer: retried after a delay when the server was
// busy, retried when it failed, not retried when it was full. (Not for
// refusals, other 4xx: a proxy answers 502 for them, as
// docs/protocol.md says, which a client retries.)
func TestProxyStatusReadsAsServer(t *testing.T) {
	for _, status := range []int{0, 408, 429, 500, 502, 503, 504, 507, 599} {
		for _, busy := range []bool{false, true} {
			retry := Retryable(status, busy)
			got, ra := ProxyStatus(ProxyFailure{Answers: []Answer{{Status: status, Retryable: retry}}})
			_, parsed := ParseRetryAfter(ra, time.Time{})
			if Retryable(got, parsed) != retry {
				t.Errorf("server %d (busy %v, retryable %v): proxy %d, Retry-After %q", status, busy, retry, got, ra)
			}
			if busy && status == 503 && !parsed {
				t.Errorf("a busy server: proxy %d without a usable Retry-After", got)
			}
		}
	}
}
