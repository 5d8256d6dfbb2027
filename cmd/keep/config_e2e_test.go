package main

import (
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/locator"
)

// "keep server --config" and "keep proxy --config" with an Arvados
// config.yml, through the real binary.

const (
	cfgSystemToken = "config-e2e-system-token-do-not-log"
	cfgSigningKey  = "config-e2e-blob-signing-key-do-not-log"
	cfgMgmtToken   = "config-e2e-management-token-do-not-log"
	cfgUserToken   = "config-e2e-user-token"
	// cfgSelf is this server's keepstore URL: port 0, so that it binds a
	// free port, on a host that is this machine. cfgOther is another
	// host's (TEST-NET-1, never this machine, and no DNS lookup).
	cfgSelf  = "http://127.0.0.1:0/"
	cfgOther = "http://192.0.2.1:25107/"
)

// cfgHTTPS are the config edits that make this server's URL https.
var cfgHTTPS = []string{
	`"` + cfgSelf + `": {}` + "\n          \"" + cfgOther, `"https://127.0.0.1:0/": {}` + "\n          \"" + cfgOther, // InternalURLs
	`"` + cfgSelf + `": {}` + "\n      e2e00-nyw5e-000000000000001", `"https://127.0.0.1:0/": {}` + "\n      e2e00-nyw5e-000000000000001", // AccessViaHosts
}

// cfgCluster is an Arvados cluster configuration written for one test,
// with two keepstores, each with a volume of its own.
type cfgCluster struct {
	dirs      [2]string // this host's volume, the other host's volume
	cert, key string
	pool      *x509.CertPool
}

func newCfgCluster(t *testing.T) *cfgCluster {
	c := &cfgCluster{dirs: [2]string{t.TempDir(), t.TempDir()}}
	c.cert, c.key, c.pool = selfSigned(t, t.TempDir())
	return c
}

// text is the config.yml; edit rewrites it (old, new, old, new...) for
// the variants the tests need.
func (c *cfgCluster) text(edit ...string) string {
	s := strings.NewReplacer(
		"SYSTOKEN", cfgSystemToken, "SIGNKEY", cfgSigningKey, "MGMTTOKEN", cfgMgmtToken,
		"SELF", cfgSelf, "OTHER", cfgOther, "DIR0", c.dirs[0], "DIR1", c.dirs[1],
		"CERT", c.cert, "KEY", c.key,
	).Replace(`# An Arvados config.yml, as far as keepstore reads it, plus a key it does not.
Clusters:
  e2e00:
    SystemRootToken: SYSTOKEN
    ManagementToken: MGMTTOKEN
    API:
      MaxConcurrentRequests: 8
    Collections:
      BlobSigningKey: SIGNKEY
      BlobSigningTTL: 2h
    Workbench:
      SiteName: not read by keep
    TLS:
      Certificate: "file://CERT"
      Key: "file://KEY"
    Services:
      Keepstore:
        InternalURLs:
          "SELF": {}
          "OTHER": {}
      Keepproxy:
        InternalURLs:
          "http://127.0.0.1:0": {}
    Volumes:
      e2e00-nyw5e-000000000000000:
        Driver: Directory
        DriverParameters:
          Root: "DIR0"
        Replication: 2
        StorageClasses:
          default: true
          hot: true
        AccessViaHosts:
          "SELF": {}
      e2e00-nyw5e-000000000000001:
        Driver: Directory
        DriverParameters:
          Root: "DIR1"
        AccessViaHosts:
          "OTHER": {}
`)
	for i := 0; i+1 < len(edit); i += 2 {
		if !strings.Contains(s, edit[i]) {
			panic("config edit: no " + edit[i])
		}
		s = strings.Replace(s, edit[i], edit[i+1], 1)
	}
	return s
}

// write writes text(edit...) to a file and returns its path.
func (c *cfgCluster) write(t *testing.T, edit ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(c.text(edit...)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startCfgProcess runs keep with args in proctest.Env, waits until it
// listens and returns it with its address as a scheme URL. It is stopped
// when the test ends.
func startCfgProcess(t *testing.T, scheme string, args ...string) *keepProcess {
	t.Helper()
	p, addr := proctest.Listen(t, proctest.Env(t), `listening" addr=`, args...)
	return &keepProcess{Process: p, base: fmt.Sprintf("%s://127.0.0.1:%d", scheme, addr.Port())}
}

// cfgClient is an HTTP client trusting pool (nil: the system roots).
func cfgClient(t *testing.T, pool *x509.CertPool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// cfgDo sends one request and returns its status, body and headers.
func cfgDo(t *testing.T, client *http.Client, method, url, token string, body []byte, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// cfgPut stores data with the user token and returns the locator answered.
func cfgPut(t *testing.T, client *http.Client, base string, data []byte, hdr ...string) locator.Locator {
	t.Helper()
	hash := fmt.Sprintf("%x", md5.Sum(data))
	code, body, _ := cfgDo(t, client, "PUT", base+"/"+hash, cfgUserToken, data, hdr...)
	if code != 200 {
		t.Fatalf("PUT = %d %q", code, body)
	}
	loc, err := locator.Parse(strings.TrimSpace(body))
	if err != nil {
		t.Fatalf("PUT answered %q: %v", body, err)
	}
	return loc
}

// cfgOn reports whether dir holds the block hash.
func cfgOn(dir, hash string) bool {
	_, err := os.Stat(filepath.Join(dir, hash[:3], hash))
	return err == nil
}

// cfgEmpty fails unless dir has no entries at all.
func cfgEmpty(t *testing.T, dir string) {
	t.Helper()
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("volume directory %s was touched: %v %v", dir, ents, err)
	}
}

// TestE2EServerConfig runs "keep server --config FILE" with nothing
// else: it listens where its own InternalURLs entry says, serves only
// the volume whose AccessViaHosts names it, signs with the file's
// BlobSigningKey and TTL, requires signatures (BlobSigning defaults to
// true), and opens /index to the file's SystemRootToken alone.
func TestE2EServerConfig(t *testing.T) {
	c := newCfgCluster(t)
	p := startCfgProcess(t, "http", "server", "--config", c.write(t))
	client := cfgClient(t, nil)

	data := []byte("stored through a server configured by config.yml")
	before := time.Now()
	loc := cfgPut(t, client, p.base, data, "X-Keep-Storage-Classes", "hot")
	if !cfgOn(c.dirs[0], loc.Hash) {
		t.Errorf("block not in this host's volume %s", c.dirs[0])
	}
	cfgEmpty(t, c.dirs[1])

	signer := locator.Signer{Key: []byte(cfgSigningKey), TTL: 2 * time.Hour}
	if err := signer.Verify(loc, cfgUserToken, time.Now()); err != nil {
		t.Errorf("locator %s is not signed with BlobSigningKey and BlobSigningTTL: %v", loc, err)
	}
	if err := signer.Verify(loc, cfgUserToken, before.Add(2*time.Hour+time.Minute)); err == nil {
		t.Errorf("signature of %s outlives BlobSigningTTL (2h)", loc)
	}

	bare := locator.Locator{Hash: loc.Hash, Size: loc.Size}
	forged := locator.Signer{Key: []byte("another key"), TTL: 2 * time.Hour}.Sign(bare, cfgUserToken, time.Now().Add(time.Hour))
	tests := []struct {
		name, method, path, token string
		code                      int
		body                      string
	}{
		{"signed GET", "GET", "/" + loc.String(), cfgUserToken, 200, string(data)},
		{"signed HEAD", "HEAD", "/" + loc.String(), cfgUserToken, 200, ""},
		{"unsigned GET", "GET", "/" + bare.String(), cfgUserToken, 400, ""},
		{"GET signed for another token", "GET", "/" + loc.String(), "someone-else", 400, ""},
		{"GET signed with another key", "GET", "/" + forged.String(), cfgUserToken, 400, ""},
		{"index with the system token", "GET", "/index", cfgSystemToken, 200, loc.Hash + "+" + fmt.Sprint(loc.Size) + " "},
		{"index with a user token", "GET", "/index", cfgUserToken, 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, _ := cfgDo(t, client, tt.method, p.base+tt.path, tt.token, nil)
			if code != tt.code || (tt.body != "" && !strings.HasPrefix(body, tt.body)) {
				t.Errorf("%s %s = %d %.60q, want %d %.60q", tt.method, tt.path, code, body, tt.code, tt.body)
			}
		})
	}

	// Replication 2 on the volume: one write reports two copies.
	data2 := []byte("replication from the volume's config")
	code, body, hdr := cfgDo(t, client, "PUT", fmt.Sprintf("%s/%x", p.base, md5.Sum(data2)), cfgUserToken, data2)
	if code != 200 || hdr.Get("X-Keep-Replicas-Stored") != "2" {
		t.Errorf("PUT = %d %q, X-Keep-Replicas-Stored %q; want 2 from the volume's Replication", code, body, hdr.Get("X-Keep-Replicas-Stored"))
	}
	// StorageClasses: the volume has default and hot, not cold.
	if code, body, _ := cfgDo(t, client, "PUT", fmt.Sprintf("%s/%x", p.base, md5.Sum(data2)), cfgUserToken, data2, "X-Keep-Storage-Classes", "cold"); code != 507 {
		t.Errorf("PUT for class cold = %d %q, want 507", code, body)
	}

	// ManagementToken opens the health, status and metrics routes.
	for _, tt := range []struct {
		path, token string
		code        int
	}{
		{"/_health/ping", cfgMgmtToken, 200},
		{"/_health/ping", "", 401},
		{"/_health/ping", cfgUserToken, 403},
		{"/_status", cfgSystemToken, 403},
		{"/metrics", cfgMgmtToken, 200},
	} {
		if code, body, _ := cfgDo(t, client, "GET", p.base+tt.path, tt.token, nil); code != tt.code {
			t.Errorf("GET %s with token %q = %d %.80q, want %d", tt.path, tt.token, code, body, tt.code)
		}
	}

	logs := p.Log().String()
	if !strings.Contains(logs, "internal_url="+cfgSelf) || !strings.Contains(logs, "management_routes=true") {
		t.Errorf("log lacks the internal URL or the management routes:\n%s", logs)
	}
	for _, secret := range []string{cfgSystemToken, cfgSigningKey, cfgMgmtToken, cfgUserToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
}

// cfgDelete stores data, makes its copy older than age and deletes it
// with the system token; it returns the answer's status.
func cfgDelete(t *testing.T, client *http.Client, base, dir string, data []byte, age time.Duration) int {
	t.Helper()
	loc := cfgPut(t, client, base, data)
	old := time.Now().Add(-age)
	if err := os.Chtimes(filepath.Join(dir, loc.Hash[:3], loc.Hash), old, old); err != nil {
		t.Fatal(err)
	}
	code, _, _ := cfgDo(t, client, "DELETE", base+"/"+loc.Hash, cfgSystemToken, nil)
	return code
}

// TestE2EServerConfigFlags: flags given with --config override it, and
// the trash settings come through.
func TestE2EServerConfigFlags(t *testing.T) {
	flagVolume := t.TempDir()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("flag-system-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		edit   []string // to the config text
		args   []string
		scheme string
		check  func(t *testing.T, c *cfgCluster, client *http.Client, base string)
	}{
		{
			name: "--internal-url and --listen serve the other host's volume",
			args: []string{"--internal-url", strings.TrimSuffix(cfgOther, "/"), "--listen", "127.0.0.1:0"},
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				loc := cfgPut(t, client, base, []byte("on the other host's volume"))
				if !cfgOn(c.dirs[1], loc.Hash) {
					t.Errorf("block not in %s", c.dirs[1])
				}
				cfgEmpty(t, c.dirs[0])
			},
		},
		{
			name: "--volume replaces the config's volumes",
			args: []string{"--volume", flagVolume},
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				loc := cfgPut(t, client, base, []byte("on the flag's volume"))
				if !cfgOn(flagVolume, loc.Hash) {
					t.Errorf("block not in --volume %s", flagVolume)
				}
				cfgEmpty(t, c.dirs[0])
				cfgEmpty(t, c.dirs[1])
			},
		},
		{
			name: "--require-signatures=false",
			args: []string{"--require-signatures=false"},
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				loc := cfgPut(t, client, base, []byte("readable unsigned"))
				if code, _, _ := cfgDo(t, client, "GET", fmt.Sprintf("%s/%s+%d", base, loc.Hash, loc.Size), cfgUserToken, nil); code != 200 {
					t.Errorf("unsigned GET = %d, want 200", code)
				}
			},
		},
		{
			name: "--system-token-file and --signing-ttl",
			args: []string{"--system-token-file", tokenFile, "--signing-ttl", "10m"},
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				loc := cfgPut(t, client, base, []byte("short signature"))
				if err := (locator.Signer{Key: []byte(cfgSigningKey), TTL: 10 * time.Minute}).Verify(loc, cfgUserToken, time.Now()); err != nil {
					t.Errorf("locator %s not signed with --signing-ttl 10m: %v", loc, err)
				}
				if code, _, _ := cfgDo(t, client, "GET", base+"/index", "flag-system-token", nil); code != 200 {
					t.Errorf("/index with the --system-token-file token = %d", code)
				}
				if code, _, _ := cfgDo(t, client, "GET", base+"/index", cfgSystemToken, nil); code != 403 {
					t.Errorf("/index with the config's SystemRootToken = %d, want 403", code)
				}
			},
		},
		{
			name: "--management-token-file",
			args: []string{"--management-token-file", tokenFile},
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				if code, _, _ := cfgDo(t, client, "GET", base+"/_health/ping", "flag-system-token", nil); code != 200 {
					t.Errorf("/_health/ping with the --management-token-file token = %d", code)
				}
				if code, _, _ := cfgDo(t, client, "GET", base+"/_health/ping", cfgMgmtToken, nil); code != 403 {
					t.Errorf("/_health/ping with the config's ManagementToken = %d, want 403", code)
				}
			},
		},
		{
			name: "BlobTrashLifetime: a deleted copy's trash deadline",
			edit: []string{"BlobSigningTTL: 2h\n", "BlobSigningTTL: 2h\n      BlobTrashLifetime: 5h\n"},
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				data := []byte("trashed for five hours")
				if code := cfgDelete(t, client, base, c.dirs[0], data, time.Hour); code == 405 || !cfgOn(c.dirs[0], fmt.Sprintf("%x", md5.Sum(data))) {
					t.Errorf("DELETE of a copy younger than BlobSigningTTL = %d, or the copy went", code)
				}
				data = []byte("old enough to trash")
				hash := fmt.Sprintf("%x", md5.Sum(data))
				start := time.Now()
				if code := cfgDelete(t, client, base, c.dirs[0], data, 3*time.Hour); code != 200 {
					t.Errorf("DELETE of a copy older than BlobSigningTTL = %d, want 200", code)
				}
				trashed, _ := filepath.Glob(filepath.Join(c.dirs[0], hash[:3], hash+".trash.*"))
				if len(trashed) != 1 || cfgOn(c.dirs[0], hash) {
					t.Fatalf("after DELETE: trash %v, block still there: %v", trashed, cfgOn(c.dirs[0], hash))
				}
				var deadline int64
				fmt.Sscan(strings.TrimPrefix(filepath.Ext(trashed[0]), "."), &deadline)
				if want := start.Add(5 * time.Hour).Unix(); deadline < want-60 || deadline > want+60 {
					t.Errorf("trash deadline %d, want about %d (now + BlobTrashLifetime)", deadline, want)
				}
			},
		},
		{
			name: "BlobTrash: false turns DELETE off",
			edit: []string{"BlobSigningTTL: 2h\n", "BlobSigningTTL: 2h\n      BlobTrash: false\n"},
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				if code := cfgDelete(t, client, base, c.dirs[0], []byte("never trashed"), 3*time.Hour); code != 405 {
					t.Errorf("DELETE with BlobTrash: false = %d, want 405", code)
				}
			},
		},
		{
			name: "--blob-trash overrides BlobTrash: false",
			edit: []string{"BlobSigningTTL: 2h\n", "BlobSigningTTL: 2h\n      BlobTrash: false\n"},
			args: []string{"--blob-trash"},
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				if code := cfgDelete(t, client, base, c.dirs[0], []byte("trashed after all"), 3*time.Hour); code != 200 {
					t.Errorf("DELETE with --blob-trash = %d, want 200", code)
				}
			},
		},
		{
			name:   "https InternalURL serves TLS.Certificate",
			edit:   cfgHTTPS,
			scheme: "https",
			check: func(t *testing.T, c *cfgCluster, client *http.Client, base string) {
				loc := cfgPut(t, client, base, []byte("over TLS"))
				if !cfgOn(c.dirs[0], loc.Hash) {
					t.Errorf("block not in %s", c.dirs[0])
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCfgCluster(t)
			scheme := "http"
			if tt.scheme != "" {
				scheme = tt.scheme
			}
			p := startCfgProcess(t, scheme, append([]string{"server", "--config", c.write(t, tt.edit...)}, tt.args...)...)
			tt.check(t, c, cfgClient(t, c.pool), p.base)
		})
	}
}

// TestE2EConfigErrors: a configuration that cannot be served is one
// sentence on stderr and exit status 1, before anything listens.
func TestE2EConfigErrors(t *testing.T) {
	c := newCfgCluster(t)
	missing := filepath.Join(t.TempDir(), "config.yml")
	tests := []struct {
		name string
		cmd  string
		path string // "" means c.write(edit...)
		edit []string
		args []string
		want string
	}{
		{name: "missing file", path: missing, want: "no such file or directory"},
		{name: "YAML error", edit: []string{"    Volumes:\n", "    Volumes: [\n"}, want: "not a cluster configuration"},
		{name: "no volume for this host", edit: []string{"          \"" + cfgSelf + "\": {}\n      e2e00-nyw5e-000000000000001", "          \"" + cfgOther + "\": {}\n      e2e00-nyw5e-000000000000001"},
			want: "no volume is for " + cfgSelf},
		{name: "S3 volume with a bad parameter", edit: []string{"    Volumes:\n", "    Volumes:\n      e2e00-nyw5e-00000000000000s:\n        Driver: S3\n        DriverParameters: {Bucket: blocks, PrefixLength: three}\n"},
			want: "volume e2e00-nyw5e-00000000000000s: DriverParameters.PrefixLength is three, not a number"},
		{name: "two clusters", edit: []string{"Clusters:\n", "Clusters:\n  e2e01: {}\n"}, want: "configures 2 clusters (e2e00, e2e01); say which"},
		{name: "unknown cluster", args: []string{"--cluster", "e2e99"}, want: `does not configure cluster "e2e99"`},
		{name: "signing on, no key", edit: []string{"BlobSigningKey: " + cfgSigningKey, "BlobSigningKey: \"\""},
			want: "Collections.BlobSigning is on (the Arvados default) but Collections.BlobSigningKey is empty"},
		{name: "https without TLS files", edit: append([]string{"      Certificate", "      Unused"}, cfgHTTPS...),
			want: "https://127.0.0.1:0/ is https: TLS.Certificate is not set"},
		{name: "not this host", args: []string{"--internal-url", "http://elsewhere.example:25107"}, want: "http://elsewhere.example:25107 is not among Services.Keepstore.InternalURLs"},
		{name: "proxy without keepproxy URLs", cmd: "proxy", edit: []string{"      Keepproxy:\n        InternalURLs:\n          \"http://127.0.0.1:0\": {}\n", ""},
			args: []string{"--services", missing}, want: "Services.Keepproxy.InternalURLs is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.path
			if path == "" {
				path = c.write(t, tt.edit...)
			}
			cmd := tt.cmd
			if cmd == "" {
				cmd = "server"
			}
			_, stderr, err := proctest.Run(t, proctest.Env(t), nil, append([]string{cmd, "--config", path}, tt.args...)...)
			prefix := fmt.Sprintf("keep %s: --config %s: ", cmd, path)
			line := strings.TrimSuffix(stderr, "\n")
			if code := exitCode(err); code != 1 || strings.Contains(line, "\n") || !strings.HasPrefix(line, prefix) || !strings.Contains(line, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line starting %q containing %q", code, stderr, prefix, tt.want)
			}
		})
	}
}

// TestE2EProxyConfig runs "keep proxy --config FILE" in front of two
// block servers: it listens where its Services.Keepproxy.InternalURLs
// entry says and writes two copies of a block through.
func TestE2EProxyConfig(t *testing.T) {
	env := proctest.Env(t)
	svcFile, dirs, _ := startServers(t, env, 2)
	c := newCfgCluster(t)
	p := startCfgProcess(t, "http", "proxy", "--config", c.write(t), "--services", svcFile, "--any-token")
	client := cfgClient(t, nil)
	data := []byte("through a proxy configured by config.yml")
	code, body, hdr := cfgDo(t, client, "PUT", fmt.Sprintf("%s/%x", p.base, md5.Sum(data)), cfgUserToken, data, "X-Keep-Desired-Replicas", "2")
	if code != 200 || hdr.Get("X-Keep-Replicas-Stored") != "2" {
		t.Fatalf("PUT through the proxy = %d %q, %s replicas", code, body, hdr.Get("X-Keep-Replicas-Stored"))
	}
	for _, d := range dirs {
		if !cfgOn(d, fmt.Sprintf("%x", md5.Sum(data))) {
			t.Errorf("block not on the server with volume %s", d)
		}
	}
	logs := p.Log().String()
	if !strings.Contains(logs, "internal_url=http://127.0.0.1:0\n") || !strings.Contains(logs, "ManagementToken is set") || strings.Contains(logs, cfgMgmtToken) {
		t.Errorf("proxy log lacks the internal URL or the management token warning, or shows the token:\n%s", logs)
	}
}
