package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/bytesize"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepstore"
	"go.uber.org/goleak"
)

func TestServerCommand(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir, roDir := t.TempDir(), t.TempDir()
	tmp := t.TempDir()
	addrFile := filepath.Join(tmp, "addr")
	tokFile := filepath.Join(tmp, "systoken")
	os.WriteFile(tokFile, []byte("sys\n"), 0o600)
	keyFile := filepath.Join(tmp, "key")
	os.WriteFile(keyFile, []byte("blobkey\n"), 0o600)

	stderr, stop := runInProcess(t, runServer,
		"--listen", "127.0.0.1:0", "--volume", dir, "--read-only-volume", roDir,
		"--addr-file", addrFile, "--capacity", "1M", "--classes", "default,hot",
		"--system-token-file", tokFile, "--signing-key-file", keyFile, "--log-level", "debug",
		"--max-writes", "4", "--min-upload-rate", "-1", "--upload-grace", "5s",
	)
	// Stopped before goleak looks; an error from runServer then fails
	// the test at cleanup.
	defer stop()
	b, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimSpace(string(b))
	if !strings.Contains(stderr.String(), "addr="+addr) || strings.HasSuffix(addr, ":0") {
		t.Errorf("listening line does not give the bound address %s:\n%s", addr, stderr)
	}
	base := "http://" + addr
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	do := func(method, path, tok string, body []byte, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	const foo = "acbd18db4cc2f85cedef654fccc4a4d8"
	code, loc := do("PUT", "/"+foo, "tok", []byte("foo"), "X-Keep-Storage-Classes", "hot")
	if code != 200 || !strings.HasPrefix(loc, foo+"+3+A") {
		t.Fatalf("PUT = %d %q, want a signed locator", code, loc)
	}
	if _, err := os.Stat(filepath.Join(dir, foo[:3], foo)); err != nil {
		t.Errorf("block not in the volume directory: %v", err)
	}
	if code, body := do("GET", "/"+strings.TrimSpace(loc), "tok", nil); code != 200 || body != "foo" {
		t.Errorf("GET = %d %q", code, body)
	}
	if code, body := do("GET", "/index", "sys", nil); code != 200 || !strings.HasPrefix(body, foo+"+3 ") {
		t.Errorf("GET /index = %d %q", code, body)
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	if code, _ := do("PUT", "/"+fmt.Sprintf("%x", md5.Sum(big)), "tok", big); code != 507 {
		t.Errorf("PUT beyond --capacity = %d, want 507", code)
	}

}

func TestServerFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"--listen", "127.0.0.1:0"},
		{"--volume", dir, "extra"},
		{"--volume", dir, "--tls-cert", "c.pem"},
		{"--volume", dir, "--cluster", "zzzzz"},
		{"--volume", dir, "--internal-url", "http://h:1/"},
	} {
		if err := runServer(context.Background(), args, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("runServer %q = %v, want errUsage", args, err)
		}
	}
	for _, args := range [][]string{
		{"--volume", dir, "--capacity", "10X"},
		{"--volume", filepath.Join(dir, "missing"), "--listen", "127.0.0.1:0"},
		{"--volume", dir, "--require-signatures", "--listen", "127.0.0.1:0"},
		{"--volume", dir, "--signing-key-file", filepath.Join(dir, "nokey")},
		{"--volume", dir, "--log-level", "loud"},
		{"--volume", dir, "--min-upload-rate", "fast"},
		{"--volume", dir, "--max-writes", "-1"},
		{"--volume", dir, "--upload-grace", "-1s"},
		{"--config", filepath.Join(dir, "missing.yml")},
		{"--volume", dir, "--blob-replicate-concurrency", "0"},
		{"--volume", dir, "--blob-trash-lifetime", "-1h"},
	} {
		if err := runServer(context.Background(), args, io.Discard, io.Discard); err == nil || errors.Is(err, errUsage) {
			t.Errorf("runServer %q = %v, want an error", args, err)
		}
	}
}

// startServerProcess runs a keep server binary with only --listen and
// --volume flags, and reads its address from its start-up line. It is
// stopped when the test ends.
func startServerProcess(t *testing.T, dirs ...string) *keepProcess {
	t.Helper()
	args := []string{"server", "--listen", "127.0.0.1:0"}
	for _, d := range dirs {
		args = append(args, "--volume", d)
	}
	p := proctest.Start(t, proctest.Env(t), "", args...)
	return &keepProcess{Process: p, base: "http://" + proctest.WaitLine(t, p, `listening" addr=(127\.0\.0\.1:[0-9]+)`)[1]}
}

// gatedBody hands out its first half at once, then signals half and
// blocks until release is closed. After release it fails if cut is set,
// else it hands out the rest.
type gatedBody struct {
	data    []byte
	sent    int
	half    chan struct{}
	release chan struct{}
	cut     bool

	released bool // past the gate
}

func newGatedBody(data []byte, cut bool) *gatedBody {
	return &gatedBody{data: data, half: make(chan struct{}), release: make(chan struct{}), cut: cut}
}

func (g *gatedBody) Read(p []byte) (int, error) {
	half := len(g.data) / 2
	if g.sent == half && !g.released {
		close(g.half)
		<-g.release
		g.released = true
	}
	switch {
	case g.sent == half && g.cut:
		return 0, errors.New("writer stopped")
	case g.sent == len(g.data):
		return 0, io.EOF
	}
	end := len(g.data)
	if g.sent < half {
		end = half
	}
	n := copy(p, g.data[g.sent:end])
	g.sent += n
	return n, nil
}

// startPut sends a PUT of body with "Expect: 100-continue", so that the
// body is sent only once the server's handler is reading it (and has
// created its temporary file). The result arrives on the channel.
func startPut(t *testing.T, client *http.Client, url string, body *gatedBody) <-chan string {
	req, _ := http.NewRequest("PUT", url, body)
	req.ContentLength = int64(len(body.data))
	req.Header.Set("Authorization", "Bearer "+serverTestToken)
	req.Header.Set("Expect", "100-continue")
	res := make(chan string, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			res <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		res <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	return res
}

const serverTestToken = "server-test-token-do-not-log"

func expectClient(t *testing.T) *http.Client {
	tr := &http.Transport{ExpectContinueTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestServerProcessShutdown runs "keep server --listen ADDR --volume DIR
// --volume DIR", stores and reads a block, then sends SIGTERM while an
// upload is half sent: the server stops accepting connections, finishes
// the upload with 200, and exits cleanly.
func TestServerProcessShutdown(t *testing.T) {
	dirs := []string{t.TempDir(), t.TempDir()}
	p := startServerProcess(t, dirs...)
	client := expectClient(t)

	data := []byte("stored before shutdown")
	hash := fmt.Sprintf("%x", md5.Sum(data))
	req, _ := http.NewRequest("PUT", p.base+"/"+hash, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+serverTestToken)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(loc) != fmt.Sprintf("%s+%d\n", hash, len(data)) {
		t.Fatalf("PUT = %d %q", resp.StatusCode, loc)
	}
	resp, err = client.Get(p.base + "/" + strings.TrimSpace(string(loc)))
	if err != nil {
		t.Fatal(err)
	}
	back, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(back, data) {
		t.Errorf("GET = %d %q", resp.StatusCode, back)
	}
	on := 0
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, hash[:3], hash)); err == nil {
			on++
		}
	}
	if on != 1 {
		t.Errorf("block stored in %d of the --volume directories, want 1", on)
	}

	big := bytes.Repeat([]byte("in flight "), 300000)
	bigHash := fmt.Sprintf("%x", md5.Sum(big))
	body := newGatedBody(big, false)
	res := startPut(t, client, p.base+"/"+bigHash, body)
	<-body.half
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	proctest.WaitLine(t, p, "shutting down")
	// The listener closes right after that line; allow for the race.
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("server still accepting connections 30s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(body.release)
	if got, want := <-res, fmt.Sprintf("200 %s+%d\n", bigHash, len(big)); got != want {
		t.Errorf("upload in flight at SIGTERM = %q, want %q", got, want)
	}
	if err := p.Wait(); err != nil {
		t.Errorf("server exit after SIGTERM: %v\n%s", err, p.Log())
	}
	logs := p.Log().String()
	if strings.Contains(logs, serverTestToken) {
		t.Errorf("log contains the token:\n%s", logs)
	}
	if !regexp.MustCompile(`request_id=req-[0-9a-z]{20} .*method=PUT path=/` + bigHash + ` status=200`).MatchString(logs) {
		t.Errorf("log lacks the in-flight PUT with its request ID and status 200:\n%s", logs)
	}
}

// TestServerProcessKilledMidWrite kills a keep server with SIGKILL while
// it is writing a block: no file is left under the block's name, and a
// new server on the same directory does not serve it, then stores it.
func TestServerProcessKilledMidWrite(t *testing.T) {
	dir := t.TempDir()
	p := startServerProcess(t, dir)
	data := bytes.Repeat([]byte("killed mid-write "), 200000)
	hash := fmt.Sprintf("%x", md5.Sum(data))
	client := expectClient(t)
	body := newGatedBody(data, true)
	res := startPut(t, client, p.base+"/"+hash, body)
	<-body.half
	p.Kill()
	close(body.release)
	if got := <-res; strings.HasPrefix(got, "200") {
		t.Errorf("PUT to killed server = %q", got)
	}
	// Files in block subdirectories only: the volume's root holds its
	// lock and UUID files.
	files := []string{}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Dir(path) != dir {
			files = append(files, path)
		}
		return nil
	})
	// The temporary file was created before the body was asked for, and
	// SIGKILL leaves it behind: it shows the kill came mid-write.
	if len(files) != 1 {
		t.Errorf("files after the kill: %v, want one temporary file", files)
	}
	for _, f := range files {
		if name := filepath.Base(f); !strings.HasPrefix(name, "tmp") || name == hash {
			t.Errorf("file %s left by the killed write is not a temporary file", f)
		}
	}

	p = startServerProcess(t, dir)
	loc := fmt.Sprintf("/%s+%d", hash, len(data))
	resp, err := client.Get(p.base + loc)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET of the interrupted block after restart = %d, want 404", resp.StatusCode)
	}
	body = newGatedBody(data, false)
	close(body.release)
	if got, want := <-startPut(t, client, p.base+"/"+hash, body), "200 "+loc[1:]+"\n"; got != want {
		t.Errorf("PUT after restart = %q, want %q", got, want)
	}
	if got, err := os.ReadFile(filepath.Join(dir, hash[:3], hash)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("block after restart: %d bytes, %v", len(got), err)
	}
}

func TestServerRateFlag(t *testing.T) {
	for in, want := range map[string]int64{"64K": 64 << 10, "0": 0, "-1": -1, "-5M": -5 << 20, "1MB": 1e6, "-0": -1} {
		var r rateFlag
		if err := r.Set(in); err != nil || int64(r) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, r, err, want)
		}
	}
	for _, in := range []string{"", "x", "-x", "--1", "1.5K"} {
		var r rateFlag
		if err := r.Set(in); err == nil {
			t.Errorf("Set(%q) succeeded", in)
		}
	}
}

// TestServerHelp: the flags that mirror Arvados settings name their
// keys, and the upload limits show keepstore's defaults.
func TestServerHelp(t *testing.T) {
	var help bytes.Buffer
	if err := runServer(context.Background(), []string{"--help"}, io.Discard, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	flags := map[string]string{} // name -> its help
	for _, block := range strings.Split(help.String(), "\n  -")[1:] {
		name, _, _ := strings.Cut(block, " ")
		flags[strings.TrimSpace(strings.SplitN(name, "\n", 2)[0])] = block
	}
	for name, want := range map[string]string{
		"config":                     "Arvados cluster configuration",
		"internal-url":               "Services.Keepstore.InternalURLs",
		"listen":                     "Services.Keepstore.InternalURLs",
		"volume":                     "DriverParameters.Root",
		"classes":                    "Volumes.*.StorageClasses",
		"signing-key-file":           "(Arvados: Collections.BlobSigningKey)",
		"signing-ttl":                "(Arvados: Collections.BlobSigningTTL)",
		"require-signatures":         "(Arvados: Collections.BlobSigning,",
		"system-token-file":          "(Arvados: SystemRootToken)",
		"management-token-file":      "(Arvados: ManagementToken)",
		"blob-trash":                 "(Arvados: Collections.BlobTrash)",
		"blob-trash-lifetime":        "(Arvados: Collections.BlobTrashLifetime) (default 336h0m0s)",
		"blob-trash-check-interval":  "(Arvados: Collections.BlobTrashCheckInterval) (default 24h0m0s)",
		"blob-trash-concurrency":     fmt.Sprintf("(Arvados: Collections.BlobTrashConcurrency) (default %d)", keepstore.DefaultTrashConcurrency),
		"blob-replicate-concurrency": fmt.Sprintf("(Arvados: Collections.BlobReplicateConcurrency) (default %d)", keepstore.DefaultPullConcurrency),
		"max-requests":               "(Arvados: API.MaxConcurrentRequests;",
		"tls-cert":                   "(Arvados: TLS.Certificate,",
		"tls-key":                    "(Arvados: TLS.Key)",
		"log-level":                  "(Arvados: SystemLogs.LogLevel)",
		"max-writes":                 fmt.Sprintf("(default %d)", keepstore.DefaultMaxConcurrentWrites),
		"min-upload-rate":            fmt.Sprintf("(default %s)", bytesize.Format(keepstore.DefaultMinUploadRate)),
		"upload-grace":               fmt.Sprintf("(default %v)", keepstore.DefaultUploadGrace),
	} {
		if !strings.Contains(flags[name], want) {
			t.Errorf("--%s help %q lacks %q", name, flags[name], want)
		}
	}
}
