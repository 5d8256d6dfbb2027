// Package s3test runs a real S3 server for tests (see internal/s3local:
// versitygw on a Unix socket in a temporary directory, with random
// credentials), skipping the test loudly when none is installed.
//
// A Unix socket keeps the port rule without a port: no port is chosen,
// so no other program can be answering in the server's place, and the
// random credentials are checked on every request anyway.
package s3test

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/keepproject/keep/internal/s3local"
)

// Endpoint is the URL S3 clients of HTTPClient use: any host will do,
// since that client dials the server's socket whatever the URL says.
const Endpoint = "http://s3.test"

// Server is a running S3 server.
type Server struct {
	*s3local.Server
	t testing.TB
}

// Start runs a server until t ends, or skips t when none is installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := s3local.Binary()
	if bin == "" {
		t.Skipf("SKIPPING S3 TESTS: %v", s3local.ErrNoServer)
	}
	// Socket paths are limited to about 100 bytes: use a short directory.
	dir, err := os.MkdirTemp("", "s3test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := s3local.Start(bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return &Server{Server: s, t: t}
}

// Restart starts the server again on the same data.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.Server.Restart(); err != nil {
		s.t.Fatal(err)
	}
}

// NewBucket creates a bucket with a fresh name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "b" + hex.EncodeToString(b)
	if err := s.Server.NewBucket(name); err != nil {
		t.Fatal(err)
	}
	return name
}

// TCPEndpoint returns an http:// URL on 127.0.0.1 that forwards to the
// server, for programs that cannot dial its socket (the keep binary).
// It listens on port 0 and stops when t ends.
func (s *Server) TCPEndpoint(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				track(c, true)
				defer track(c, false)
				up, err := net.Dial("unix", s.Socket)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() { io.Copy(up, c); up.(*net.UnixConn).CloseWrite(); close(done) }()
				io.Copy(c, up)
				c.Close()
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + l.Addr().String()
}
