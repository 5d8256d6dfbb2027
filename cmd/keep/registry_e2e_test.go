package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/pgtest"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/internal/protocol"
)

// TestE2ERegistry runs a cluster the way docs/deploy.md sets one up
// without Arvados: block servers that require signatures, the registry
// as the one record of what is kept (SQLite, and PostgreSQL where it is
// installed), tokens from keep token, collections put at different
// replications. Signatures expire and the data stays readable through
// the registry; balance --collections runs with a server down and with
// a pull that fails; nothing referenced is lost or trimmed.
func TestE2ERegistry(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { registryScenario(t, filepath.Join(t.TempDir(), "registry.db")) })
	t.Run("postgres", func(t *testing.T) { registryScenario(t, pgtest.Start(t)) })
}

// regTTL is the signing TTL of servers, registry and balance: long
// enough for a put to record its collection before its signatures run
// out, short enough to wait for them to.
const regTTL = "8s"

// regCluster is a balance cluster with a registry in front.
type regCluster struct {
	*balanceCluster
	env    []string // the writer's environment: registry, token, CA
	reader []string // the same with a read token
	client *http.Client
	host   string
	writer string // the write token
	db     string // the registry's database
}

func startRegCluster(t *testing.T, db string) *regCluster {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing-key")
	os.WriteFile(keyFile, []byte("registry e2e signing key\n"), 0o600)
	certFile, certKey, pool := selfSigned(t, dir)
	// Every process trusts the private CA, as the guide's units do.
	t.Setenv("SSL_CERT_FILE", certFile)
	env := proctest.Env(t)
	token := func(name, scope string) string {
		out, stderr, err := proctest.Run(t, env, nil, "token", "create", name, "--scope", scope, "--db", db)
		if err != nil || len(strings.TrimSpace(out)) < 40 || !strings.Contains(stderr, "cannot be shown again") {
			t.Fatalf("keep token create %s: %v\n%s%s", name, err, out, stderr)
		}
		return strings.TrimSpace(out)
	}
	writer, reader := token("writer", "write"), token("balance", "read")
	// The registry serves the servers' list, which the cluster writes
	// (and rewrites on restarts) once its servers are up.
	svcLink := filepath.Join(dir, "services.json")
	_, addr := proctest.Listen(t, env, "keep registry listening", "registry", "--db", db, "--listen", "127.0.0.1:0",
		"--tls-cert", certFile, "--tls-key", certKey, "--signing-key-file", keyFile, "--signing-ttl", regTTL,
		"--services", svcLink, "--cluster-id", "zzzzz")
	host := fmt.Sprintf("127.0.0.1:%d", addr.Port())
	c := newBalanceCluster(t, 4, "--signing-key-file", keyFile, "--require-signatures", "--signing-ttl", regTTL, "--registry", host)
	if err := os.Symlink(c.svcFile, svcLink); err != nil {
		t.Fatal(err)
	}
	r := &regCluster{balanceCluster: c, client: cfgClient(t, pool), writer: writer, host: host, db: db}
	base := append(slices.Clone(c.env), "ARVADOS_API_HOST="+r.host)
	r.env = append(slices.Clone(base), "ARVADOS_API_TOKEN="+writer)
	r.reader = append(slices.Clone(base), "ARVADOS_API_TOKEN="+reader)
	return r
}

// put stores data as the collection name at replicas and returns its
// uuid and the block's hash.
func (r *regCluster) put(name string, replicas int, data []byte) (string, string) {
	r.t.Helper()
	src := filepath.Join(r.t.TempDir(), "data")
	os.WriteFile(src, data, 0o644)
	out, stderr, err := proctest.Run(r.t, r.env, nil, "put", "--no-cache", "--replicas", strconv.Itoa(replicas), "--name", name, src)
	uuid := strings.TrimSpace(out)
	if err != nil || !protocol.IsUUID(uuid) {
		r.t.Fatalf("put --name %q: %v\n%s%s", name, err, out, stderr)
	}
	sum := md5.Sum(data)
	return uuid, hex.EncodeToString(sum[:])
}

// call sends an API request to the registry with the write token.
func (r *regCluster) call(method, path string, body any) map[string]any {
	r.t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, "https://"+r.host+path, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+r.writer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		r.t.Fatalf("%s %s: %s %v %v", method, path, resp.Status, out, err)
	}
	return out
}

// balance runs keep balance --collections --commit with the read token.
func (r *regCluster) balance(args ...string) (string, error) {
	r.t.Helper()
	return runAdmin(r.t, r.reader, r.svcFile, r.tokenFile, regTTL, "balance", append([]string{"--collections", "--commit"}, args...)...)
}

// copies counts the live copies of hash on every volume, those of
// stopped servers included.
func (r *regCluster) copies(hash string) int {
	live, _ := r.holders(hash)
	return len(live)
}

var expiryRE = regexp.MustCompile(`\+A[0-9a-f]{40}@([0-9a-f]{8})`)

func registryScenario(t *testing.T, db string) {
	r := startRegCluster(t, db)
	big := func(s string) []byte { return bytes.Repeat([]byte(s), 50000) }
	oneUUID, oneHash := r.put("one copy", 1, big("one "))
	_, threeHash := r.put("three copies", 3, big("three "))
	trashedUUID, trashedHash := r.put("trashed", 2, big("trashed "))
	want := map[string]int{oneHash: 1, threeHash: 3, trashedHash: 2}
	for h, n := range want {
		if got := r.copies(h); got != n {
			t.Fatalf("block %s: %d copies after put, want %d", h, got, n)
		}
	}
	// The servers and a proxy take only the registry's tokens: a read
	// token may not write, an unknown one may not read.
	proxy := startProxyProcess(t, r.env, "--services", r.svcFile, "--registry", r.host)
	viaProxy := append(slices.Clone(r.reader), "ARVADOS_KEEP_SERVICES="+proxy.base)
	src := filepath.Join(t.TempDir(), "small")
	os.WriteFile(src, []byte("through the proxy"), 0o644)
	if _, stderr, err := proctest.Run(t, viaProxy, nil, "put", "--no-cache", src); err == nil || !strings.Contains(stderr, "403") {
		t.Errorf("put through the proxy with a read token: %v\n%s", err, stderr)
	}
	if _, stderr, err := proctest.Run(t, append(slices.Clone(r.env), "ARVADOS_KEEP_SERVICES="+proxy.base), nil, "put", "--no-cache", src); err != nil {
		t.Errorf("put through the proxy with a write token: %v\n%s", err, stderr)
	}
	stranger := append(slices.Clone(r.env), "ARVADOS_API_TOKEN=zzz")
	if _, stderr, err := proctest.Run(t, stranger, nil, "get", "--services", r.svcFile, fmt.Sprintf("%s+%d", oneHash, len(big("one ")))); err == nil || !strings.Contains(stderr, "unknown or revoked token") {
		t.Errorf("get with an unknown token: %v\n%s", err, stderr)
	}

	// Garbage: stored, and recorded nowhere.
	src = filepath.Join(t.TempDir(), "garbage")
	os.WriteFile(src, big("garbage "), 0o644)
	if _, stderr, err := proctest.Run(t, r.env, nil, "put", "--no-cache", src); err != nil {
		t.Fatalf("put: %v\n%s", err, stderr)
	}
	garbageSum := md5.Sum(big("garbage "))
	garbageHash := hex.EncodeToString(garbageSum[:])
	// In the trash, a collection can still be recovered: its blocks stay.
	if got := r.call("POST", "/arvados/v1/collections/"+trashedUUID+"/trash", nil); got["is_trashed"] != true {
		t.Fatalf("trash: %v", got)
	}

	// Signatures run out; the registry signs afresh on every read.
	old, stderr, err := proctest.Run(t, r.env, nil, "get", "--manifest", "three copies")
	m := expiryRE.FindStringSubmatch(old)
	if err != nil || m == nil {
		t.Fatalf("get --manifest: %v\n%s%s", err, old, stderr)
	}
	expiry, _ := strconv.ParseInt(m[1], 16, 64)
	waitUntil(t, "the signatures have expired", func() bool { return time.Now().Unix() > expiry })
	outDir := t.TempDir()
	if _, stderr, err := proctest.Run(t, r.env, nil, "get", "-o", outDir+"/stale/", writeManifest(t, old)); err == nil {
		t.Fatalf("get with expired signatures worked:\n%s", stderr)
	}
	for _, id := range []string{"three copies", oneUUID} {
		dst := filepath.Join(outDir, strings.ReplaceAll(id, " ", "-"))
		if _, stderr, err := proctest.Run(t, r.env, nil, "get", "-o", dst+"/", id); err != nil {
			t.Fatalf("get %q after the signatures expired: %v\n%s", id, err, stderr)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(outDir, "three-copies", "data")); !bytes.Equal(got, big("three ")) {
		t.Errorf("three copies read back: %d bytes", len(got))
	}
	if out, stderr, err := proctest.Run(t, r.env, nil, "ls", "three copies"); err != nil || !strings.Contains(out, "300000  data") {
		t.Errorf("ls: %v\n%s%s", err, out, stderr)
	}

	// balance with a server down: pulls, but no trash; nothing trimmed.
	r.ageAll()
	r.stop(3)
	out, err := r.balance()
	if !strings.Contains(out, "no trash lists") {
		t.Fatalf("balance with a server down: %v\n%s", err, out)
	}
	waitUntil(t, "the running servers worked their lists", func() bool { return listsWorked(t, r.svcs[:3], "balance-system-token") })
	for h, n := range want {
		if got := r.copies(h); got < n {
			t.Errorf("block %s: %d copies after balance with a server down, want at least %d", h, got, n)
		}
	}
	if r.copies(garbageHash) == 0 {
		t.Errorf("garbage trashed while a server was down")
	}

	// All up: the garbage goes, every collection keeps what it wants,
	// the trashed one included, and check agrees.
	r.start(3)
	r.ageAll()
	if out, err := r.balance("--wait"); err != nil {
		t.Fatalf("balance: %v\n%s", err, out)
	}
	waitUntil(t, "the servers worked their lists", r.listsDone)
	for h, n := range want {
		if got := r.copies(h); got != n {
			t.Errorf("block %s: %d copies after balance, want %d", h, got, n)
		}
	}
	if got := r.copies(garbageHash); got != 0 {
		t.Errorf("garbage: %d copies after balance, want 0", got)
	}
	if out, err := runAdmin(t, r.reader, r.svcFile, r.tokenFile, regTTL, "check", "--collections"); err != nil {
		t.Errorf("check --collections: %v\n%s", err, out)
	}

	// A pull that fails: the only copy of "one copy" goes bad as the
	// collection comes to want two. balance says which pull failed and
	// why, and exits non-zero; the other collections are untouched.
	live, _ := r.holders(oneHash)
	path := filepath.Join(r.dirs[live[0]], oneHash[:3], oneHash)
	data, _ := os.ReadFile(path)
	data[0] ^= 0xff
	os.WriteFile(path, data, 0o644)
	r.call("PATCH", "/arvados/v1/collections/"+oneUUID, map[string]any{"collection": map[string]any{"replication_desired": 2}})
	out, err = r.balance("--wait")
	if exitCode(err) != 1 || !strings.Contains(out, "pull failed: "+oneHash) {
		t.Fatalf("balance with a failing pull: %v\n%s", err, out)
	}
	for _, h := range []string{threeHash, trashedHash} {
		if got := r.copies(h); got != want[h] {
			t.Errorf("block %s: %d copies after the failed pull, want %d", h, got, want[h])
		}
	}

	// A revoked token is refused by the registry at once.
	if out, stderr, err := proctest.Run(t, r.env, nil, "token", "revoke", "balance", "--db", r.db); err != nil {
		t.Fatalf("token revoke: %v\n%s%s", err, out, stderr)
	}
	if out, err := runAdmin(t, r.reader, r.svcFile, r.tokenFile, regTTL, "check", "--collections"); err == nil || !strings.Contains(out, "unknown or revoked token") {
		t.Errorf("check --collections with a revoked token: %v\n%s", err, out)
	}
}
