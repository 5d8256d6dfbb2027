package keepclient_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keepproject/keep/keepclient"
)

// TestPutResendsOnStaleConnection checks that an upload sent on a
// kept-alive connection the server has just closed is resent on a new
// connection within the same attempt, not counted as a failure.
func TestPutResendsOnStaleConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveOnce(c)
			}()
		}
	}()
	addr := l.Addr().(*net.TCPAddr)
	svc := keepclient.Service{UUID: "zzzzz-bi6l4-000000000000000", Host: "127.0.0.1", Port: addr.Port, Type: keepclient.TypeDisk}
	kc, err := keepclient.New(keepclient.Options{Services: []keepclient.Service{svc}, Replicas: 1, MaxPasses: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	for i := 0; i < 2; i++ {
		res, err := kc.Put(context.Background(), []byte(fmt.Sprint("resend ", i)), keepclient.PutOptions{})
		if err != nil || len(res.Attempts) != 1 {
			t.Fatalf("Put %d: %v, attempts %+v", i, err, res)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the second write resent on a new one)", n)
	}
}

// serveOnce answers the first PUT on c and then, like a server whose
// idle timeout just expired, closes the connection when the next request
// arrives, without answering it.
func serveOnce(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for n := 0; ; n++ {
		req, err := http.ReadRequest(br)
		if err != nil || n > 0 {
			return
		}
		if req.Header.Get("Expect") == "100-continue" {
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		sum := md5.Sum(body)
		loc := fmt.Sprintf("%s+%d\n", hex.EncodeToString(sum[:]), len(body))
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Keep-Replicas-Stored: 1\r\n\r\n%s", len(loc), loc)
	}
}
