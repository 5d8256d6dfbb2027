// Package s3local runs a local S3 server for keep up, keep bench and the
// tests: versitygw with its posix backend in a directory (a bucket is a
// subdirectory, an object a file), listening on a Unix socket, so that
// no port is chosen and no other program can answer in its place, with
// random credentials.
package s3local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Version is the versitygw release keep is tested against.
const Version = "v1.8.0"

// InstallHint says how to get the server.
const InstallHint = "GOBIN=$HOME/.cache/keep-ci/bin go install github.com/versity/versitygw/cmd/versitygw@" + Version

// ErrNoServer means no versitygw binary was found.
var ErrNoServer = errors.New("no S3 server (versitygw) found; install one with: " + InstallHint + " (or set KEEP_TEST_S3_SERVER)")

// Binary returns the path of versitygw: $KEEP_TEST_S3_SERVER, else on
// PATH, else ${KEEP_CI_CACHE:-~/.cache/keep-ci}/bin/versitygw (where
// .ci/run installs it); "" if none is found.
func Binary() string {
	if p := os.Getenv("KEEP_TEST_S3_SERVER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if c := os.Getenv("KEEP_CI_CACHE"); c != "" {
		if p := filepath.Join(c, "bin", "versitygw"); fileExists(p) {
			return p
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "keep-ci", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Server is a running S3 server.
type Server struct {
	// AccessKey and SecretKey are its credentials, Region its region.
	AccessKey, SecretKey, Region string
	// Socket is the Unix socket it listens on.
	Socket string
	// Root holds the buckets.
	Root string
	// CredentialsFile holds AccessKey and SecretKey, as an S3 volume's
	// credentials_file takes them.
	CredentialsFile string

	bin string

	mu     sync.Mutex // protects cmd and exited
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// Start runs versitygw (bin, or Binary() if empty) on the buckets in
// dir/data, listening on dir/s3.sock. dir's path must be short (a
// socket's path is limited to about 100 bytes). Stop stops it.
func Start(bin, dir string) (*Server, error) {
	if bin == "" {
		if bin = Binary(); bin == "" {
			return nil, ErrNoServer
		}
	}
	s := &Server{
		AccessKey: "ak" + random(8), SecretKey: random(20), Region: "us-east-1",
		Socket: filepath.Join(dir, "s3.sock"), Root: filepath.Join(dir, "data"), CredentialsFile: filepath.Join(dir, "credentials"), bin: bin,
	}
	if len(s.Socket) > 100 {
		return nil, fmt.Errorf("S3 server socket path %s is too long for a Unix socket; use a shorter directory", s.Socket)
	}
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.CredentialsFile, []byte(s.AccessKey+" "+s.SecretKey+"\n"), 0o600); err != nil {
		return nil, err
	}
	return s, s.start()
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// start starts the process and waits until it answers.
func (s *Server) start() error {
	os.Remove(s.Socket)
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", s.Socket, "--quiet", "posix", s.Root)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(s.Root)}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the S3 server %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c := s.HTTPClient()
	defer c.CloseIdleConnections()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return fmt.Errorf("the S3 server %s exited at start:\n%s", s.bin, out.String())
		default:
		}
		if resp, err := c.Get("http://s3.local/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("the S3 server %s did not answer on %s within 30 s:\n%s", s.bin, s.Socket, out.String())
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
			return d.DialContext(ctx, "unix", s.Socket)
		},
		MaxIdleConnsPerHost: 64,
	}}
}

// Endpoint is the server's address as an S3 volume's endpoint takes it.
func (s *Server) Endpoint() string { return "unix://" + s.Socket }

// VolumeURL is the keep server --volume URL of bucket (BUCKET or
// BUCKET/PREFIX) on this server, with blocks under three-digit
// prefixes and the credentials read from CredentialsFile.
func (s *Server) VolumeURL(bucket string) string {
	return "s3://" + bucket + "?endpoint=" + s.Endpoint() + "&region=" + s.Region + "&prefix_length=3&credentials_file=" + s.CredentialsFile
}

// Stop kills the server; the data stays, for Restart.
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
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// NewBucket creates a bucket (a directory of the posix backend).
func (s *Server) NewBucket(name string) error {
	return os.Mkdir(filepath.Join(s.Root, name), 0o755)
}
