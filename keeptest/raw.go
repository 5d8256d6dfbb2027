package keeptest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// RawRequest formats an HTTP/1.1 request by hand, for requests no client
// library would send: the request line, "Host: keep", the header lines
// given ("Name: value"), a bearer token unless a header line starts with
// "Authorization:" ("Authorization:" alone sends none), a blank line and
// body exactly as given (no Content-Length unless a header gives one).
func RawRequest(method, target, token string, headers []string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: keep\r\n", method, target)
	auth := true
	for _, h := range headers {
		if strings.HasPrefix(h, "Authorization:") {
			auth = false
			if h == "Authorization:" {
				continue
			}
		}
		b.WriteString(h + "\r\n")
	}
	if auth {
		b.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// RawExchange sends req on a new connection to addr and reads one
// response. The request is written from a goroutine, so that a server
// answering before it has read everything (a header too large, a body
// refused) is still heard; when halfClose, the sending side is closed
// after it. The body read is capped at 1 MiB: an answer that large is a
// failure anyway. A response that cannot be read fails t.
func RawExchange(t testing.TB, addr, req string, halfClose bool) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(time.Minute)) // hang guard only
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := io.WriteString(conn, req); err == nil && halfClose {
			conn.(*net.TCPConn).CloseWrite()
		}
	}()
	defer func() {
		conn.Close()
		<-wrote
	}()
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		line, _, _ := strings.Cut(req, "\r\n")
		t.Fatalf("reading the response to %.80q: %v", line, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(body)
}
