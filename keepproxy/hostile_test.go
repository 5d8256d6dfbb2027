package keepproxy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepproxy"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// rawPut builds a PUT of body to path with a correct Content-Length, a
// token, and the extra header lines given ("Name: value").
func rawPut(path, body string, headers ...string) string {
	return rawReq("PUT", path, append([]string{fmt.Sprintf("Content-Length: %d", len(body))}, headers...), body)
}

// rawReq builds a request with the test token (keeptest.RawRequest).
func rawReq(method, path string, headers []string, body string) string {
	return keeptest.RawRequest(method, path, "tok", headers, body)
}

// exchange sends raw on a new connection (closing the sending side after
// it when halfClose) and returns the response's status and body
// (keeptest.RawExchange).
func exchange(t *testing.T, addr, raw string, halfClose bool) (int, string) {
	t.Helper()
	resp, body := keeptest.RawExchange(t, addr, raw, halfClose)
	return resp.StatusCode, body
}

// TestProxyHostileRequests: each hostile request gets its status, none
// of them stores anything on the servers behind the proxy, no answer
// echoes an unbounded amount of the request, and the proxy still serves a
// normal PUT and GET afterwards.
func TestProxyHostileRequests(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	srv, px := startProxyWith(t, c, keepproxy.Options{MinRate: 1 << 20, RateWindow: time.Second}, nil)
	addr := srv.Listener.Addr().String()
	data := "hostile block"
	hash := locator.New([]byte(data)).Hash
	loc := "/" + hash
	long := func(n int) string { return strings.Repeat("7", n) }
	hints := strings.Repeat("+Kzzzzz", 100)
	tests := []struct {
		name      string
		raw       string
		halfClose bool
		status    int
	}{
		{"60000 storage classes", rawPut(loc, data, "X-Keep-Storage-Classes: "+manyClasses(60000)), false, 400},
		{"class name of 300 bytes", rawPut(loc, data, "X-Keep-Storage-Classes: "+strings.Repeat("c", 300)), false, 400},
		{"desired replicas not a number", rawPut(loc, data, "X-Keep-Desired-Replicas: two"), false, 400},
		{"desired replicas negative", rawPut(loc, data, "X-Keep-Desired-Replicas: -1"), false, 400},
		{"desired replicas of 100000 digits", rawPut(loc, data, "X-Keep-Desired-Replicas: "+long(100000)), false, 400},
		{"two desired replicas headers", rawPut(loc, data, "X-Keep-Desired-Replicas: 1", "X-Keep-Desired-Replicas: 3"), false, 400},
		{"length lie: body shorter", rawReq("PUT", loc, []string{"Content-Length: 100"}, data), true, 400},
		{"length lie: size hint", rawPut(loc+"+99", data), false, 400},
		{"length over 64 MiB", rawReq("PUT", loc, []string{fmt.Sprintf("Content-Length: %d", locator.MaxBlockSize+1)}, ""), false, 413},
		{"chunked", rawReq("PUT", loc, []string{"Transfer-Encoding: chunked"}, fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(data), data)), false, 411},
		{"chunked with a Content-Length", rawReq("PUT", loc, []string{"Content-Length: 13", "Transfer-Encoding: chunked"}, fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(data), data)), false, 411},
		{"no Content-Length", rawReq("PUT", loc, nil, ""), false, 411},
		{"hash mismatch", rawPut(loc, "not the hostile block"), false, 400},
		{"hash mismatch with zero replicas", rawPut(loc, "other", "X-Keep-Desired-Replicas: 0"), false, 400},
		{"path traversal", rawPut("/../../etc/passwd", data), false, 400},
		{"encoded traversal", rawPut("/..%2f..%2f"+hash, data), false, 400},
		{"uppercase hash", rawPut("/"+strings.ToUpper(hash), data), false, 400},
		{"short hash", rawPut(loc[:20], data), false, 400},
		{"size hint with leading zero", rawPut(loc+"+013", data), false, 400},
		{"100 hints", rawPut(loc+"+13"+hints, data), false, 400},
		{"path of 20000 bytes", rawPut(loc+"+13+A"+long(20000), data), false, 400},
		{"GET of 100 hints", rawReq("GET", loc+hints, nil, ""), false, 400},
		{"GET of /index", rawReq("GET", "/index", nil, ""), false, 400},
		{"POST", rawReq("POST", loc, []string{fmt.Sprintf("Content-Length: %d", len(data))}, data), false, 405},
		{"DELETE", rawReq("DELETE", loc, nil, ""), false, 405},
		{"PATCH", rawReq("PATCH", loc, []string{fmt.Sprintf("Content-Length: %d", len(data))}, data), false, 405},
		{"loop via Via", rawPut(loc, data, "Via: HTTP/1.1 keepproxy"), false, 500},
		{"loop in a second Via", rawPut(loc, data, "Via: 1.1 nginx", "Via: 1.1 KeepProxy"), false, 500},
		{"no token", rawPut(loc, data, "Authorization:"), false, 401},
		{"Basic credentials", rawPut(loc, data, "Authorization: Basic dXNlcjpwYXNz"), false, 401},
		{"token of 10000 bytes", rawPut(loc, data, "Authorization: Bearer "+long(10000)), false, 401},
		{"token not ASCII", rawPut(loc, data, "Authorization: Bearer t\xc3\xa9"), false, 401},
		{"two Authorization headers", rawPut(loc, data, "Authorization: Bearer a", "Authorization: Bearer b"), false, 401},
		{"unknown Expect", rawPut(loc, data, "Expect: bogus"), false, 417},
		{"slow body", rawReq("PUT", loc, []string{"Content-Length: 13"}, "host"), false, 408},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, msg := exchange(t, addr, tt.raw, tt.halfClose)
			if status != tt.status {
				t.Errorf("status %d %q, want %d", status, clip(msg), tt.status)
			}
			if len(msg) > 2000 {
				t.Errorf("answer of %d bytes echoes the request", len(msg))
			}
		})
	}
	if n := len(c.PutRequests()); n != 0 {
		t.Errorf("%d hostile requests reached the servers", n)
	}
	if n := len(c.Holders(hash)); n != 0 {
		t.Errorf("hostile block stored on %d servers", n)
	}

	// Still serving.
	resp := put(t, srv.URL, []byte(data), nil)
	if resp.StatusCode != 200 || len(c.Holders(hash)) != 2 {
		t.Fatalf("normal PUT after the hostile requests: %d, %d holders", resp.StatusCode, len(c.Holders(hash)))
	}
	status, got := exchange(t, addr, rawReq("GET", loc+"+13", nil, ""), false)
	if status != 200 || got != data {
		t.Errorf("normal GET after the hostile requests: %d %q", status, clip(got))
	}
	if st := px.Stats(); st.Receiving != 0 || st.Writing != 0 || st.Reading != 0 {
		t.Errorf("requests still in progress: %+v", st)
	}
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
