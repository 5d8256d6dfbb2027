package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/internal/s3local"
	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepclient"
)

// keep server on S3 buckets of a real S3 server, through the binary:
// two servers, a bucket each, put at N=2 and get back; the blocks are
// objects in both buckets.
func TestE2EServerOnS3(t *testing.T) {
	s3srv := s3test.Start(t)
	endpoint := s3srv.TCPEndpoint(t)
	env := proctest.Env(t)
	creds := filepath.Join(t.TempDir(), "s3-credentials")
	os.WriteFile(creds, []byte(s3srv.AccessKey+"\n"+s3srv.SecretKey+"\n"), 0o600)
	var svcs []keepclient.Service
	var buckets []string
	for i := range 2 {
		b := s3srv.NewBucket(t)
		buckets = append(buckets, b)
		url := "s3://" + b + "/keep?endpoint=" + endpoint + "&region=" + s3srv.Region + "&prefix_length=3&credentials_file=" + creds
		svc, _ := startServer(t, env, i, "--volume", url)
		svcs = append(svcs, svc)
	}
	data, _ := keepclient.MarshalServices(svcs)
	svcFile := filepath.Join(t.TempDir(), "services.json")
	os.WriteFile(svcFile, data, 0o644)
	src, content := randomFile(t, 5<<20)
	text := putGetBack(t, env, svcFile, src, content)
	hash := strings.Fields(text)[1][:32]
	for _, b := range buckets {
		// versitygw's posix backend keeps objects as files.
		if _, err := os.Stat(filepath.Join(s3srv.Root, b, "keep", hash[:3], hash)); err != nil {
			t.Errorf("block %s is not an object of bucket %s: %v", hash, b, err)
		}
	}
	// A bad S3 URL is one sentence, not a Go error chain.
	_, stderr, err := proctest.Run(t, env, nil, "server", "--listen", "127.0.0.1:0", "--volume", "s3://b?secret=x")
	if exitCode(err) != 1 || !strings.Contains(stderr, "unknown parameter \"secret\"") {
		t.Errorf("server with a bad S3 URL: %v\n%s", err, stderr)
	}
}

// keep up --s3: the local cluster keeps its blocks in buckets of a local
// S3 server it starts, and stops it at the end.
func TestE2EUpS3(t *testing.T) {
	if s3local.Binary() == "" {
		t.Skipf("SKIPPING: %v", s3local.ErrNoServer)
	}
	env := proctest.Env(t)
	dir, err := os.MkdirTemp("", "upS3") // short: it holds the S3 server's socket
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := proctest.Start(t, env, "Press Ctrl-C", "up", "--s3", "--s3-server", s3local.Binary(), "--dir", dir, "--servers", "3")
	src, content := randomFile(t, 3<<20)
	svcFile := filepath.Join(dir, "services.json")
	text := putGetBack(t, env, svcFile, src, content)
	hash := strings.Fields(text)[1][:32]
	objects, _ := filepath.Glob(filepath.Join(dir, "s3", "data", "server-*", hash[:3], hash))
	if len(objects) != 2 {
		t.Errorf("block %s is an object of %d buckets, want 2: %v", hash, len(objects), objects)
	}
	d.Signal(syscall.SIGTERM)
	d.Wait()
	if _, err := os.Stat(filepath.Join(dir, "s3", "s3.sock")); err == nil {
		c := (&s3local.Server{Socket: filepath.Join(dir, "s3", "s3.sock")}).HTTPClient()
		if resp, err := c.Get("http://s3.local/"); err == nil {
			resp.Body.Close()
			t.Error("the S3 server still answers after keep up stopped")
		}
		c.CloseIdleConnections()
	}
}

// putGetBack puts src at 2 replicas on the services of svcFile, reads it
// back with keep get, fails t unless it is content, and returns the
// manifest.
func putGetBack(t *testing.T, env []string, svcFile, src string, content []byte) string {
	t.Helper()
	text, stderr, err := proctest.Run(t, env, nil, "put", "--services", svcFile, "--replicas", "2", src)
	if err != nil {
		t.Fatalf("put: %v\n%s", err, stderr)
	}
	out, stderr, err := proctest.Run(t, env, nil, "get", "--services", svcFile, writeManifest(t, text))
	if err != nil || !bytes.Equal([]byte(out), content) {
		t.Fatalf("get: %v\n%s", err, stderr)
	}
	return text
}
