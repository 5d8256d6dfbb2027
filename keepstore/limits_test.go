package keepstore_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/volumetest"
	"github.com/keepproject/keep/locator"
)

// expectClient returns a client that sends "Expect: 100-continue" and
// waits for the server's answer before sending a body.
func expectClient(t *testing.T) *http.Client {
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestRefusedWithoutUpload: a PUT refused for anything decidable from
// its headers is refused before the client sends the body.
func TestRefusedWithoutUpload(t *testing.T) {
	full := dirVolumes(t, 1)
	full[0].Capacity = 100
	ro := dirVolumes(t, 1)
	ro[0].ReadOnly = true
	servers := map[string]*testServer{
		"normal":    start(t, keepstore.Config{}),
		"full":      start(t, keepstore.Config{Volumes: full}),
		"read-only": start(t, keepstore.Config{Volumes: ro}),
	}
	data := bytes.Repeat([]byte("z"), 1000)
	tests := []struct {
		name, server, path, auth string
		length                   int64
		code                     int
	}{
		{"no token", "normal", "/" + hashOf(data), "", 1000, 401},
		{"too large", "normal", "/" + hashOf(data), "Bearer " + token, locator.MaxBlockSize + 1, 413},
		{"bad locator", "normal", "/xyz", "Bearer " + token, 1000, 400},
		{"size hint", "normal", "/" + hashOf(data) + "+999", "Bearer " + token, 1000, 400},
		{"capacity", "full", "/" + hashOf(data), "Bearer " + token, 1000, 507},
		{"read-only", "read-only", "/" + hashOf(data), "Bearer " + token, 1000, 507},
		{"unknown class", "normal", "/" + hashOf(data), "Bearer " + token, 1000, 507},
		{"accepted", "normal", "/" + hashOf(data), "Bearer " + token, 1000, 200},
	}
	client := expectClient(t)
	for _, tt := range tests {
		body := &volumetest.CountingReader{R: bytes.NewReader(data)}
		req, _ := http.NewRequest("PUT", servers[tt.server].URL+tt.path, body)
		req.ContentLength = tt.length
		req.Header.Set("Expect", "100-continue")
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		if tt.name == "unknown class" {
			req.Header.Set("X-Keep-Storage-Classes", "nonexistent")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.code)
		}
		if sent := body.Reads() > 0; sent != (tt.code == 200) {
			t.Errorf("%s: body read %d times; want reads only if accepted", tt.name, body.Reads())
		}
	}
}

// blockingReader signals its first Read, then blocks until released.
type blockingReader struct {
	data    io.Reader
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (b *blockingReader) Read(p []byte) (int, error) {
	b.once.Do(func() {
		close(b.started)
		<-b.release
	})
	return b.data.Read(p)
}

// TestBusy: reads and uploads have separate limits, refused at once with
// 503 and Retry-After when full; an upload waiting for its body holds a
// write slot, never a read slot, so reads go on; a PUT over the write
// limit is refused before its body is sent.
func TestBusy(t *testing.T) {
	// No minimum rate: the blocked upload must keep its slot however
	// long the test takes.
	ts := start(t, keepstore.Config{MaxConcurrentRequests: 1, MaxConcurrentWrites: 1, MinUploadRate: -1})
	data := []byte("slow upload")
	ts.put(t, []byte("foo"))
	body := &blockingReader{data: bytes.NewReader(data), started: make(chan struct{}), release: make(chan struct{})}
	req, _ := http.NewRequest("PUT", ts.URL+"/"+hashOf(data), body)
	req.ContentLength = int64(len(data))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Expect", "100-continue")
	done := make(chan int)
	client := expectClient(t)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// The body is read only after the handler asked for it ("100
	// Continue"), so the handler now holds the only write slot.
	<-body.started
	if code, msg, _ := ts.do(t, "GET", "/"+hashOf([]byte("foo"))+"+3", "", nil); code != 200 || msg != "foo" {
		t.Errorf("read while every write slot is taken: %d %q; want 200", code, msg)
	}
	// A PUT over the limit is refused before its body is sent.
	refused := &volumetest.CountingReader{R: bytes.NewReader([]byte("bar"))}
	req2, _ := http.NewRequest("PUT", ts.URL+"/"+hashOf([]byte("bar")), refused)
	req2.ContentLength = 3
	req2.Header.Set("Authorization", "Bearer "+token)
	req2.Header.Set("Expect", "100-continue")
	if resp, err := expectClient(t).Do(req2); err != nil {
		t.Error(err)
	} else {
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || refused.Reads() != 0 || !strings.Contains(string(msg), "busy") {
			t.Errorf("PUT over the limit: %d %q, Retry-After %q, body read %d times; want 503 busy, Retry-After, no read",
				resp.StatusCode, msg, resp.Header.Get("Retry-After"), refused.Reads())
		}
	}
	// Management endpoints are not limited.
	if code, _, _ := ts.do(t, "GET", "/_health/ping", mgmtToken, nil); code != 200 {
		t.Errorf("health check while busy = %d", code)
	}
	close(body.release)
	if code := <-done; code != 200 {
		t.Errorf("slow upload = %d", code)
	}
	if code, _, _ := ts.do(t, "PUT", "/"+hashOf([]byte("bar")), token, []byte("bar")); code != 200 {
		t.Errorf("PUT after the slot freed = %d", code)
	}
}

// TestReadLimit: reads over MaxConcurrentRequests get 503 busy with
// Retry-After at once, and uploads still go on.
func TestReadLimit(t *testing.T) {
	ts := start(t, keepstore.Config{MaxConcurrentRequests: 1})
	big := bytes.Repeat([]byte("r"), 8<<20)
	ts.put(t, big)
	// A GET whose response is not read holds the read slot: the server
	// blocks writing once the socket buffers are full.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /%s+%d HTTP/1.1\r\nHost: x\r\n\r\n", hashOf(big), len(big))
	// Its status line says it got the slot; only then do other reads
	// start, or one of them could take the slot first.
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("the unread GET: %q %v, want 200", status, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, msg, h := ts.do(t, "GET", "/"+hashOf(big)+fmt.Sprintf("+%d", len(big)), "", nil)
		if code == 503 {
			if h.Get("Retry-After") != "1" || !strings.Contains(msg, "busy") {
				t.Errorf("read over the limit: %d %q Retry-After %q; want 503 busy with Retry-After 1", code, msg, h.Get("Retry-After"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unread GET never held the read slot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _, _ := ts.do(t, "PUT", "/"+hashOf([]byte("w")), token, []byte("w")); code != 200 {
		t.Errorf("PUT while every read slot is taken = %d, want 200", code)
	}
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

// TestClassesHeaderBounded: a storage-classes header naming too many or
// too long classes gets 400 before the body is read, however long it is;
// repeats of one class are one class.
func TestClassesHeaderBounded(t *testing.T) {
	ts := start(t, keepstore.Config{})
	tests := []struct {
		name, header string
		code         int
		msg          string
	}{
		{"60000 classes", manyClasses(60000), 400, "more than 64 classes"},
		{"65 classes", manyClasses(65), 400, "more than 64 classes"},
		{"long class name", strings.Repeat("x", 257), 400, "class name of 257 bytes"},
		{"64 classes", manyClasses(63) + ",default", 200, "default=1"},
		{"60000 repeats", strings.Repeat("default, ", 60000), 200, "default=1"},
	}
	client := expectClient(t)
	for i, tt := range tests {
		data := fmt.Appendf(nil, "classes header %d", i)
		body := &volumetest.CountingReader{R: bytes.NewReader(data)}
		req, _ := http.NewRequest("PUT", ts.URL+"/"+hashOf(data), body)
		req.ContentLength = int64(len(data))
		req.Header.Set("Expect", "100-continue")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Keep-Storage-Classes", tt.header)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := string(msg)
		if resp.StatusCode == 200 {
			got = resp.Header.Get("X-Keep-Storage-Classes-Confirmed")
		}
		if resp.StatusCode != tt.code || !strings.Contains(got, tt.msg) {
			t.Errorf("%s: %d %q, want %d %q", tt.name, resp.StatusCode, got, tt.code, tt.msg)
		}
		if tt.code == 400 && !strings.Contains(got, "X-Keep-Storage-Classes") {
			t.Errorf("%s: message %q does not name the header", tt.name, got)
		}
		if read := body.Reads() > 0; read != (tt.code == 200) {
			t.Errorf("%s: body read %d times; want reads only if accepted", tt.name, body.Reads())
		}
	}
}
