package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepproxy"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// runInProcess runs a keep command's run function (runServer, runProxy)
// with args in this process, its standard error in a Log, and waits until
// a line of that log contains "listening". stop cancels the command's
// context and returns what run returned; it is called when the test ends,
// and the test fails if run returned an error.
func runInProcess(t *testing.T, run func(context.Context, []string, io.Writer, io.Writer) error, args ...string) (log *proc.Log, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log = proc.NewLog(0)
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, io.Discard, log)
		log.Close()
		done <- err
	}()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("%v after cancel:\n%s", err, log)
		}
	})
	wait, cancelWait := context.WithTimeout(context.Background(), proctest.Timeout)
	defer cancelWait()
	if _, err := log.WaitLine(wait, regexp.MustCompile("listening")); err != nil {
		t.Fatalf("never listened (returned %v): %v", stop(), err)
	}
	return log, stop
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// to dir and returns their paths and a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keep proxy test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startProxyCommand runs "keep proxy" with args in front of a keeptest
// cluster and returns its address; it stops when the test ends.
func startProxyCommand(t *testing.T, c *keeptest.Cluster, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	svcs, err := keepclient.MarshalServices(c.Services())
	if err != nil {
		t.Fatal(err)
	}
	svcFile, addrFile := filepath.Join(dir, "services.json"), filepath.Join(dir, "addr")
	if err := os.WriteFile(svcFile, svcs, 0o600); err != nil {
		t.Fatal(err)
	}
	runInProcess(t, runProxy, append([]string{"--listen", "127.0.0.1:0", "--addr-file", addrFile, "--services", svcFile, "--any-token"}, args...)...)
	b, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestProxyCommandTLS: with --tls-cert and --tls-key the proxy serves
// HTTPS that a client trusting the certificate can write and read
// through, and refuses plain HTTP.
func TestProxyCommandTLS(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	addr := startProxyCommand(t, c, "--tls-cert", certFile, "--tls-key", keyFile)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	data := []byte("over TLS")
	l := locator.New(data)
	req, _ := http.NewRequest("PUT", "https://"+addr+"/"+l.Hash, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("PUT over HTTPS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Keep-Replicas-Stored") != "2" || resp.TLS == nil {
		t.Fatalf("PUT over HTTPS: %d %q", resp.StatusCode, body)
	}
	req, _ = http.NewRequest("GET", "https://"+addr+"/"+l.String(), nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("GET over HTTPS: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Errorf("GET over HTTPS: %d %q", resp.StatusCode, body)
	}

	// A client that does not trust the certificate is refused.
	untrusting := &http.Transport{}
	t.Cleanup(untrusting.CloseIdleConnections)
	if _, err := (&http.Client{Transport: untrusting}).Get("https://" + addr + "/_health/ping"); err == nil {
		t.Error("a client without the certificate in its roots connected")
	}
	plain := &http.Transport{}
	t.Cleanup(plain.CloseIdleConnections)
	if resp, err := (&http.Client{Transport: plain}).Get("http://" + addr + "/_health/ping"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS port")
		}
	}
}

// TestProxyCommandFlags: bad combinations are usage errors, --max-blocks
// sets both limits unless one is given, and --help states the memory
// bound and the slow-client rule.
func TestProxyCommandFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--tls-cert", "c.pem"},
		{"--tls-key", "k.pem"},
		{"--max-writes", "0"},
		{"--max-blocks", "-1"},
		{"--min-rate", "0"},
		{"--rate-window", "0s"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		if err := runProxy(context.Background(), args, io.Discard, &stderr); !errors.Is(err, errUsage) {
			t.Errorf("keep proxy %q: %v, want a usage error", args, err)
		}
	}

	for _, tt := range []struct {
		args          []string
		reads, writes int
	}{
		{nil, keepproxy.DefaultMaxReads, keepproxy.DefaultMaxWrites},
		{[]string{"--max-blocks", "5"}, 5, 5},
		{[]string{"--max-blocks", "5", "--max-reads", "2"}, 2, 5},
		{[]string{"--max-writes", "3"}, keepproxy.DefaultMaxReads, 3},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		maxBlocks := fs.Int("max-blocks", 0, "")
		reads := fs.Int("max-reads", keepproxy.DefaultMaxReads, "")
		writes := fs.Int("max-writes", keepproxy.DefaultMaxWrites, "")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		opts := keepproxy.Options{MaxReads: *reads, MaxWrites: *writes, MinRate: 1, RateWindow: time.Second, BufferIdle: time.Second}
		if err := checkProxyFlags(fs, &opts, *maxBlocks); err != nil || opts.MaxReads != tt.reads || opts.MaxWrites != tt.writes {
			t.Errorf("%q: reads %d writes %d (%v), want %d %d", tt.args, opts.MaxReads, opts.MaxWrites, err, tt.reads, tt.writes)
		}
	}

	var help bytes.Buffer
	runProxy(context.Background(), []string{"--help"}, io.Discard, &help)
	for _, want := range []string{"(--max-reads + --max-writes) × 64 MiB", "--min-rate", "408", "-tls-cert", "-buffer-idle"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("keep proxy --help does not mention %q", want)
		}
	}
}

// TestProxyCommandConfig: with --config, a proxy whose
// Services.Keepproxy.InternalURLs entry is https serves TLS with the
// file's TLS.Certificate and TLS.Key; --listen overrides the address.
func TestProxyCommandConfig(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	config := filepath.Join(dir, "config.yml")
	text := "Clusters:\n  zzzzz:\n    ManagementToken: mgmt\n" +
		"    TLS: {Certificate: \"file://" + certFile + "\", Key: \"file://" + keyFile + "\"}\n" +
		"    Services: {Keepproxy: {InternalURLs: {\"https://127.0.0.1:1/\": {}}}}\n"
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startProxyCommand(t, c, "--config", config)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/_health/ping")
	if err != nil {
		t.Fatalf("proxy from --config does not serve TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.HasSuffix(addr, ":1") {
		t.Errorf("GET /_health/ping on %s = %d", addr, resp.StatusCode)
	}

	for _, args := range [][]string{{"--cluster", "zzzzz"}, {"--internal-url", "https://127.0.0.1:1/"}} {
		if err := runProxy(context.Background(), args, io.Discard, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("keep proxy %q without --config: %v, want a usage error", args, err)
		}
	}
}
