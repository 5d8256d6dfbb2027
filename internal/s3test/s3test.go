// Package s3test runs a real S3 server for tests: versitygw with its
// posix backend, in a temporary directory, listening on a Unix socket
// (so no port is ever chosen, and no other program can answer in its
// place), with random credentials.
//
// The binary comes from $KEEP_TEST_S3_SERVER, else versitygw on PATH,
// else ~/.cache/keep-ci/bin/versitygw (where .ci/run installs it). When
// none is found, tests that need it are skipped with a message saying
// how to install it.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the versitygw release the tests are run against.
const Version = "v1.8.0"

// InstallHint says how to get the server.
const InstallHint = "GOBIN=$HOME/.cache/keep-ci/bin go install github.com/versity/versitygw/cmd/versitygw@" + Version

// Endpoint is the URL S3 clients use: any host will do, since Client
// dials the server's socket whatever the URL says.
const Endpoint = "http://s3.test"

// Server is a running S3 server.
type Server struct {
	AccessKey, SecretKey string
	Region               string

	bin, root, socket string
	t                 testing.TB

	mu     sync.Mutex // protects cmd and exited
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Binary returns the path of the S3 server, or "" if none is installed.
func Binary() string {
	if p := os.Getenv("KEEP_TEST_S3_SERVER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "keep-ci", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Start runs a server until t ends, or skips t when none is installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skipf("SKIPPING: no S3 server for the S3 tests; install one with: %s (or set KEEP_TEST_S3_SERVER)", InstallHint)
	}
	// Socket paths are limited to about 100 bytes: use a short directory.
	dir, err := os.MkdirTemp("", "s3test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{
		AccessKey: "ak" + random(8), SecretKey: random(20), Region: "us-east-1",
		bin: bin, root: filepath.Join(dir, "data"), socket: filepath.Join(dir, "s3.sock"), t: t,
	}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// start starts the server process and waits until it answers.
func (s *Server) start() error {
	os.Remove(s.socket)
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", s.socket, "--quiet", "posix", s.root)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(s.root)}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c := s.HTTPClient()
	defer c.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start:\n%s", s.bin, out.String())
		default:
		}
		if resp, err := c.Get(Endpoint + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s did not answer on %s within 30 s:\n%s", s.bin, s.socket, out.String())
		}
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

// HTTPClient returns a client that reaches the server through its
// socket, whatever the URL's host.
func (s *Server) HTTPClient() *http.Client {
	d := net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", s.socket)
		},
		MaxIdleConnsPerHost: 16,
	}}
}

// Stop kills the server; the data stays for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same data.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Root returns the directory holding the buckets (versitygw's posix
// backend keeps each object as a file under it).
func (s *Server) Root() string { return s.root }

// NewBucket creates a bucket with a fresh name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := "b" + random(6)
	if err := os.Mkdir(filepath.Join(s.root, name), 0o755); err != nil {
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
				up, err := net.Dial("unix", s.socket)
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
