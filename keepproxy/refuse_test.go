package keepproxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// countingReader counts Read calls, to check that a refusal reads
// nothing.
type countingReader struct {
	r     io.Reader
	reads atomic.Int32
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.r.Read(p)
}

// manyClasses returns a storage-classes header naming n distinct classes.
func manyClasses(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "c%d", i)
	}
	return b.String()
}

// TestProxyRefusesBeforeBody: a PUT whose headers the proxy refuses is
// answered before the client sends the body (the client waits for "100
// Continue"), and nothing reaches the servers behind it. A
// storage-classes header naming too many or too long classes is one of
// these, however long it is.
func TestProxyRefusesBeforeBody(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	p := startProxy(t, c)
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	tests := []struct {
		name string
		hdr  map[string]string
		code int
		msg  string
	}{
		{"no token", map[string]string{"Authorization": ""}, 401, "no token provided"},
		{"Basic auth", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, "malformed Authorization header"},
		{"token of two words", map[string]string{"Authorization": "Bearer a b"}, 401, "malformed Authorization header"},
		{"60000 classes", map[string]string{"X-Keep-Storage-Classes": manyClasses(60000)}, 400, "X-Keep-Storage-Classes: more than 64 classes"},
		{"65 classes", map[string]string{"X-Keep-Storage-Classes": manyClasses(65)}, 400, "more than 64 classes"},
		{"long class name", map[string]string{"X-Keep-Storage-Classes": strings.Repeat("x", 257)}, 400, "class name of 257 bytes"},
		{"negative replicas", map[string]string{"X-Keep-Desired-Replicas": "-1"}, 400, "bad X-Keep-Desired-Replicas"},
		{"huge replicas", map[string]string{"X-Keep-Desired-Replicas": "99999999999999999999"}, 400, "bad X-Keep-Desired-Replicas"},
	}
	for i, tt := range tests {
		data := fmt.Appendf(nil, "refused %d", i)
		body := &countingReader{r: bytes.NewReader(data)}
		req, _ := http.NewRequest("PUT", p.URL+"/"+locator.New(data).Hash, body)
		req.ContentLength = int64(len(data))
		req.Header.Set("Expect", "100-continue")
		req.Header.Set("Authorization", "Bearer tok")
		for k, v := range tt.hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(msg), tt.msg) {
			t.Errorf("%s: %d %q, want %d %q", tt.name, resp.StatusCode, msg, tt.code, tt.msg)
		}
		if n := body.reads.Load(); n != 0 {
			t.Errorf("%s: body read %d times before the refusal", tt.name, n)
		}
	}
	if n := len(c.PutRequests()); n != 0 {
		t.Errorf("%d refused requests reached the servers", n)
	}

	// Repeats of one class are one class, passed on once.
	resp := put(t, p.URL, []byte("one class"), map[string]string{"X-Keep-Storage-Classes": strings.Repeat("default, ", 60000)})
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT with 60000 repeats of a class: %d %q", resp.StatusCode, msg)
	}
	for _, r := range c.PutRequests() {
		if got := r.Header.Get("X-Keep-Storage-Classes"); got != "default" {
			t.Errorf("upstream X-Keep-Storage-Classes %q, want \"default\"", got)
		}
	}
}

// TestProxyRequestID: a client's sane X-Request-Id is echoed and passed
// to the servers; any other gets a new id in the Arvados form.
func TestProxyRequestID(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	p := startProxy(t, c)
	for i, given := range []string{"req-given-by-client", "has spaces", strings.Repeat("x", 201)} {
		resp := put(t, p.URL, fmt.Appendf(nil, "request id %d", i), map[string]string{
			"X-Request-Id": given, "X-Keep-Desired-Replicas": "1",
		})
		got := resp.Header.Get("X-Request-Id")
		if i == 0 && got != given {
			t.Errorf("X-Request-Id %q answered with %q, want it echoed", given, got)
		}
		if i > 0 && (got == given || len(got) != 24 || !strings.HasPrefix(got, "req-")) {
			t.Errorf("X-Request-Id %q answered with %q, want a new req-... id", given, got)
		}
		puts := c.PutRequests()
		if up := puts[len(puts)-1].Header.Get("X-Request-Id"); up != got {
			t.Errorf("upstream X-Request-Id %q, want %q", up, got)
		}
	}
}
