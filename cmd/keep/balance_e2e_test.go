package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
)

// balanceCluster is a set of real keep server processes for the
// lifecycle tests: short signing TTL, trash lifetime and sweep interval,
// a system token, and a services file kept up to date across restarts.
type balanceCluster struct {
	t         *testing.T
	env       []string
	tokenFile string
	svcFile   string
	svcs      []keepclient.Service
	dirs      []string
	daemons   []*proc.Process // nil when stopped
	// serverArgs are given to every server after the cluster's own.
	serverArgs []string
}

// The lifecycle settings of every server (and of balance).
const (
	e2eSigningTTL    = "1m"
	e2eTrashLifetime = "2s"
	e2eTrashInterval = "200ms"
)

func newBalanceCluster(t *testing.T, n int, serverArgs ...string) *balanceCluster {
	c := &balanceCluster{t: t, env: proctest.Env(t), tokenFile: filepath.Join(t.TempDir(), "system-token"), serverArgs: serverArgs}
	os.WriteFile(c.tokenFile, []byte("balance-system-token\n"), 0o600)
	c.svcFile = filepath.Join(t.TempDir(), "services.json")
	for i := range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.svcs = append(c.svcs, keepclient.Service{})
		c.daemons = append(c.daemons, nil)
		c.start(i)
	}
	return c
}

// start starts server i on its volume, on a new port, and rewrites the
// services file.
func (c *balanceCluster) start(i int) {
	c.t.Helper()
	args := []string{"--volume", c.dirs[i], "--system-token-file", c.tokenFile,
		"--signing-ttl", e2eSigningTTL, "--blob-trash-lifetime", e2eTrashLifetime, "--blob-trash-check-interval", e2eTrashInterval}
	svc, d := startServer(c.t, c.env, i, append(args, c.serverArgs...)...)
	c.svcs[i], c.daemons[i] = svc, d
	data, _ := keepclient.MarshalServices(c.svcs)
	if err := os.WriteFile(c.svcFile, data, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// stop kills server i and holds its port, so that nothing else answers
// there.
func (c *balanceCluster) stop(i int) {
	c.daemons[i].Kill()
	c.daemons[i] = nil
	keeptest.HoldPort(c.t, c.svcs[i].Port)
}

// put stores data with the given replicas and returns its manifest file
// and block hash.
func (c *balanceCluster) put(data []byte, replicas int) (string, string) {
	c.t.Helper()
	src := filepath.Join(c.t.TempDir(), "file")
	os.WriteFile(src, data, 0o644)
	text, stderr, err := proctest.Run(c.t, c.env, nil, "put", "--services", c.svcFile, "--replicas", fmt.Sprint(replicas), "--no-cache", src)
	if err != nil {
		c.t.Fatalf("put: %v\n%s", err, stderr)
	}
	m, err := manifest.Parse(text)
	if err != nil || len(m.Blocks()) != 1 {
		c.t.Fatalf("manifest %q: %v", text, err)
	}
	return writeManifest(c.t, text), m.Blocks()[0].Hash
}

// run runs keep balance or keep check with the cluster's settings.
func (c *balanceCluster) run(cmd string, args ...string) (string, error) {
	c.t.Helper()
	return runAdmin(c.t, c.env, c.svcFile, c.tokenFile, e2eSigningTTL, cmd, args...)
}

// runAdmin runs keep check or keep balance on the services of svcFile
// with the system token in tokenFile (and balance with the signing TTL
// ttl), and returns its output and error output together.
func runAdmin(t *testing.T, env []string, svcFile, tokenFile, ttl, cmd string, args ...string) (string, error) {
	t.Helper()
	all := []string{cmd, "--services", svcFile, "--system-token-file", tokenFile}
	if cmd == "balance" {
		all = append(all, "--signing-ttl", ttl)
	}
	out, stderr, err := proctest.Run(t, env, nil, append(all, args...)...)
	return out + stderr, err
}

// holders returns the servers whose volume holds a live copy of hash,
// and those holding it in the trash.
func (c *balanceCluster) holders(hash string) (live, trashed []int) {
	for i, d := range c.dirs {
		if _, err := os.Stat(filepath.Join(d, hash[:3], hash)); err == nil {
			live = append(live, i)
		}
		if m, _ := filepath.Glob(filepath.Join(d, hash[:3], hash+".trash.*")); len(m) > 0 {
			trashed = append(trashed, i)
		}
	}
	return live, trashed
}

// ideal returns the first n servers of hash's probe order.
func (c *balanceCluster) ideal(hash string, n int) []int {
	var out []int
	for _, s := range keepclient.ProbeOrder(hash, c.svcs)[:n] {
		out = append(out, slices.IndexFunc(c.svcs, func(x keepclient.Service) bool { return x.UUID == s.UUID }))
	}
	slices.Sort(out)
	return out
}

// ageAll makes every block file older than the signing TTL, with an
// mtime of its server's own: copies written at one instant would look
// like one file seen twice, which balance never trashes while another is
// kept.
func (c *balanceCluster) ageAll() {
	for i, d := range c.dirs {
		old := time.Now().Add(-time.Hour - time.Duration(i)*time.Second)
		filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && !e.IsDir() && len(e.Name()) == 32 {
				os.Chtimes(p, old, old)
			}
			return nil
		})
	}
}

// getJSON reads a management API document with token.
func getJSON(url, token string, v any) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// listsWorked reports whether every one of svcs has worked its pull and
// trash lists to the end, as GET /pull and GET /trash report them with
// the system token.
func listsWorked(t *testing.T, svcs []keepclient.Service, token string) bool {
	t.Helper()
	for _, s := range svcs {
		for _, list := range []string{"/pull", "/trash"} {
			var r protocol.ListReport
			if err := getJSON(s.URL()+list, token, &r); err != nil {
				t.Fatal(err)
			}
			if !r.Finished() {
				return false
			}
		}
	}
	return true
}

// listsDone reports whether every server has worked its pull and trash
// lists to the end.
func (c *balanceCluster) listsDone() bool {
	return listsWorked(c.t, c.svcs, "balance-system-token")
}

// trashReport sums the servers' reports on their current trash lists.
func (c *balanceCluster) trashReport() protocol.ListReport {
	c.t.Helper()
	var sum protocol.ListReport
	for _, s := range c.svcs {
		var r protocol.ListReport
		if err := getJSON(s.URL()+"/trash", "balance-system-token", &r); err != nil {
			c.t.Fatal(err)
		}
		sum.Items += r.Items
		sum.Done += r.Done
		sum.Skipped += r.Skipped
		sum.Failed += r.Failed
	}
	return sum
}

// indexed reports whether server i's index lists hash, as balance
// reads it (GET /index/PREFIX with the system token).
func (c *balanceCluster) indexed(i int, hash string) bool {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.svcs[i].URL()+"/index/"+hash, nil)
	req.Header.Set("Authorization", "Bearer balance-system-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET /index/%s from server %d: %s %v", hash, i, resp.Status, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, hash+"+") {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds.
func (c *balanceCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	waitUntil(c.t, what, cond)
}

// waitUntil polls cond until it holds, failing t after a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func fileMD5(p string) string {
	b, _ := os.ReadFile(p)
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// A manifest dropped from a live set said to be whole (--gc): its block
// is trashed once old enough, then deleted after the trash lifetime; the
// live manifest's block and a block newer than the signing TTL stay.
func TestE2EBalanceGarbage(t *testing.T) {
	c := newBalanceCluster(t, 4)
	keepMf, keepHash := c.put(bytes.Repeat([]byte("kept block "), 100000), 2)
	_, dropHash := c.put(bytes.Repeat([]byte("dropped block "), 100000), 2)
	c.ageAll()
	_, youngHash := c.put(bytes.Repeat([]byte("young garbage "), 100000), 2)

	out, err := c.run("balance", "--gc", keepMf)
	if err != nil || !strings.Contains(out, "dry run") || !strings.Contains(out, "WARNING: --gc:") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if live, _ := c.holders(dropHash); len(live) != 2 {
		t.Fatalf("dry run changed something: dropped block on %v", live)
	}
	if out, err := c.run("balance", "--commit", "--gc", keepMf); err != nil || !strings.Contains(out, "sent") {
		t.Fatalf("balance --commit: %v\n%s", err, out)
	}
	c.waitFor("the dropped block is trashed and then deleted", func() bool {
		live, trashed := c.holders(dropHash)
		return len(live) == 0 && len(trashed) == 0
	})
	if live, _ := c.holders(keepHash); len(live) != 2 {
		t.Errorf("live block on %v, want 2 servers", live)
	}
	if live, _ := c.holders(youngHash); len(live) != 2 {
		t.Errorf("garbage newer than the signing TTL on %v, want untouched on 2 servers", live)
	}
	if out, err := c.run("check", keepMf); err != nil {
		t.Errorf("check after balance: %v\n%s", err, out)
	}
}

// Manifest files are not known to be the whole live set: without --gc,
// balance --commit trims a referenced block's extra copy but keeps a
// block no manifest given references, however old, and says so; with
// --gc the same run trashes it too, and says that loudly.
func TestE2EBalanceKeepsUnreferencedWithoutGC(t *testing.T) {
	c := newBalanceCluster(t, 4)
	mf, hash := c.put(bytes.Repeat([]byte("referenced, a copy too many "), 100000), 3)
	_, garbage := c.put(bytes.Repeat([]byte("in no manifest given "), 100000), 2)
	c.ageAll() // both older than the signing TTL: only --gc stands between the garbage and the trash
	holding, _ := c.holders(garbage)
	if len(holding) != 2 {
		t.Fatalf("the unreferenced block is on %v, want 2 servers", holding)
	}

	out, err := c.run("balance", "--replicas", "2", "--commit", mf)
	if err != nil || !strings.Contains(out, "1 unreferenced blocks kept: manifest files are not known to be the whole live set (--gc says they are") ||
		!strings.Contains(out, "sent 0 pulls and 1 trash items") || strings.Contains(out, "WARNING") {
		t.Fatalf("balance --commit without --gc: %v\n%s", err, out)
	}
	c.waitFor("the servers have worked their lists", c.listsDone)
	if r := c.trashReport(); r.Items != 1 || r.Done != 1 {
		t.Fatalf("trash lists %+v, want the one extra copy trashed", r)
	}
	if live, _ := c.holders(hash); !slices.Equal(live, c.ideal(hash, 2)) {
		t.Errorf("referenced block on %v, want its 2 ideal places %v", live, c.ideal(hash, 2))
	}
	for _, i := range holding {
		if !c.indexed(i, garbage) {
			t.Errorf("server %d's index no longer lists the unreferenced block after balance without --gc", i)
		}
	}

	out, err = c.run("balance", "--replicas", "2", "--commit", "--gc", mf)
	if err != nil || !strings.Contains(out, "WARNING: --gc: the manifests given are taken as the whole live set: every block none of them references is trashed") ||
		!strings.Contains(out, "sent 0 pulls and 2 trash items") || strings.Contains(out, "unreferenced blocks kept") {
		t.Fatalf("balance --commit --gc: %v\n%s", err, out)
	}
	c.waitFor("the servers have worked their lists", c.listsDone)
	if r := c.trashReport(); r.Items != 2 || r.Done != 2 {
		t.Fatalf("trash lists %+v, want both copies of the unreferenced block trashed", r)
	}
	for _, i := range holding {
		if c.indexed(i, garbage) {
			t.Errorf("server %d's index still lists the unreferenced block after balance --gc", i)
		}
	}
	if live, _ := c.holders(hash); !slices.Equal(live, c.ideal(hash, 2)) {
		t.Errorf("referenced block on %v after --gc, want its 2 ideal places %v", live, c.ideal(hash, 2))
	}
}

// A server killed and its disk wiped: balance puts the copies it held
// back, and check is happy again.
func TestE2EBalanceRestoresWipedDisk(t *testing.T) {
	c := newBalanceCluster(t, 4)
	mf, hash := c.put(bytes.Repeat([]byte("restore me "), 100000), 2)
	live, _ := c.holders(hash)
	if !slices.Equal(live, c.ideal(hash, 2)) {
		t.Fatalf("block on %v, want its ideal places %v", live, c.ideal(hash, 2))
	}
	wiped := live[0]
	c.stop(wiped)
	os.RemoveAll(c.dirs[wiped])
	os.Mkdir(c.dirs[wiped], 0o755)
	c.start(wiped)
	if out, err := c.run("check", mf); exitCode(err) != 1 || !strings.Contains(out, "under-replicated") {
		t.Fatalf("check after the wipe: %v\n%s", err, out)
	}
	if out, err := c.run("balance", "--commit", mf); err != nil {
		t.Fatalf("balance --commit: %v\n%s", err, out)
	}
	c.waitFor("the wiped server has its copy back", func() bool {
		live, _ := c.holders(hash)
		return slices.Equal(live, c.ideal(hash, 2))
	})
	p := filepath.Join(c.dirs[wiped], hash[:3], hash)
	if got := fileMD5(p); got != hash {
		t.Errorf("pulled copy hashes to %s", got)
	}
	if out, err := c.run("check", mf); err != nil {
		t.Errorf("check after balance: %v\n%s", err, out)
	}
}

// A block written while its first server in probe order was down moves
// there; its only copy elsewhere is kept until the new one is confirmed
// (the last copy is never trashed), and then trashed.
func TestE2EBalanceMovesMisplaced(t *testing.T) {
	c := newBalanceCluster(t, 3)
	data := bytes.Repeat([]byte("misplaced "), 100000)
	sum := md5.Sum(data)
	hash := hex.EncodeToString(sum[:])
	first := c.ideal(hash, 1)[0]
	c.stop(first)
	mf, _ := c.put(data, 1)
	c.start(first)
	live, _ := c.holders(hash)
	if len(live) != 1 || live[0] == first {
		t.Fatalf("block on %v, want one copy off its place %d", live, first)
	}
	away := live[0]
	c.ageAll()
	if out, err := c.run("balance", "--replicas", "1", "--commit", mf); err != nil {
		t.Fatalf("balance --commit: %v\n%s", err, out)
	}
	c.waitFor("the block is pulled to its place", func() bool {
		live, _ := c.holders(hash)
		return slices.Contains(live, first)
	})
	if live, _ := c.holders(hash); !slices.Contains(live, away) {
		t.Fatalf("the only other copy was trashed before the new one was confirmed: on %v", live)
	}
	c.ageAll()
	if out, err := c.run("balance", "--replicas", "1", "--commit", mf); err != nil {
		t.Fatalf("second balance --commit: %v\n%s", err, out)
	}
	c.waitFor("the misplaced copy is trashed", func() bool {
		live, _ := c.holders(hash)
		return slices.Equal(live, []int{first})
	})
	out, stderr, err := proctest.Run(t, c.env, nil, "get", "--services", c.svcFile, mf)
	if err != nil || out != string(data) {
		t.Errorf("get after the move: %v\n%s", err, stderr)
	}
}

// A corrupted copy is found when read (the server moves it to the
// trash while the client reads another copy) and balance replaces it.
func TestE2EBalanceRepairsCorruptCopy(t *testing.T) {
	c := newBalanceCluster(t, 3)
	data := bytes.Repeat([]byte("corrupt me "), 100000)
	mf, hash := c.put(data, 2)
	first := keepclient.ProbeOrder(hash, c.svcs)[0]
	bad := slices.IndexFunc(c.svcs, func(s keepclient.Service) bool { return s.UUID == first.UUID })
	p := filepath.Join(c.dirs[bad], hash[:3], hash)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("the first server in probe order has no copy: %v", err)
	}
	b[len(b)/2] ^= 1
	os.WriteFile(p, b, 0o644)
	out, stderr, err := proctest.Run(t, c.env, nil, "get", "--services", c.svcFile, mf)
	if err != nil || out != string(data) {
		t.Fatalf("get with a corrupt first copy: %v\n%s", err, stderr)
	}
	c.waitFor("the corrupt copy is moved to the trash", func() bool {
		live, trashed := c.holders(hash)
		return !slices.Contains(live, bad) && slices.Contains(trashed, bad)
	})
	if out, err := c.run("balance", "--commit", mf); err != nil {
		t.Fatalf("balance --commit: %v\n%s", err, out)
	}
	c.waitFor("a good copy is back", func() bool {
		_, err := os.Stat(p)
		return err == nil
	})
	if got := fileMD5(p); got != hash {
		t.Errorf("replaced copy hashes to %s", got)
	}
}

// With a server's index unreadable (the server is down), balance sends
// no trash at all: garbage stays, even with --gc.
func TestE2EBalanceUnreadableIndex(t *testing.T) {
	c := newBalanceCluster(t, 3)
	keepMf, _ := c.put(bytes.Repeat([]byte("live "), 100000), 2)
	_, dropHash := c.put(bytes.Repeat([]byte("garbage "), 100000), 2)
	c.ageAll()
	before, _ := c.holders(dropHash)
	down := 0
	for slices.Contains(before, down) {
		down++
	}
	c.stop(down)
	out, err := c.run("balance", "--commit", "--gc", keepMf)
	if !strings.Contains(out, "no trash lists") || !strings.Contains(out, "0 trash items") {
		t.Errorf("balance with a server down: %v\n%s", err, out)
	}
	// No server got a trash list (nothing trashes without one), so the
	// garbage is where it was, whenever this looks.
	for i, svc := range c.svcs {
		if i == down {
			continue
		}
		var r protocol.ListReport
		if err := getJSON(svc.URL()+"/trash", "balance-system-token", &r); err != nil || r.Items != 0 {
			t.Errorf("%s: trash report %+v, %v; want no list received", svc, r, err)
		}
	}
	if live, _ := c.holders(dropHash); !slices.Equal(live, before) {
		t.Errorf("garbage on %v after a balance with a server down, want it left on %v", live, before)
	}
}

// With --collections the live set is an Arvados API server's
// collections, each wanting its replication_desired copies (or
// --replicas when unset): a block of a collection wanting 3 gets a third
// copy, one no collection references is trashed.
func TestE2EBalanceCollections(t *testing.T) {
	c := newBalanceCluster(t, 3)
	mf, wantHash := c.put(bytes.Repeat([]byte("in a collection "), 100000), 2)
	_, dropHash := c.put(bytes.Repeat([]byte("in none "), 100000), 2)
	text, _ := os.ReadFile(mf)
	three := 3
	cols := []map[string]any{
		{"uuid": "zzzzz-4zz18-000000000000001", "manifest_text": string(text), "replication_desired": three},
		{"uuid": "zzzzz-4zz18-000000000000002", "manifest_text": "", "replication_desired": nil},
	}
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/arvados/v1/collections" || r.Header.Get("Authorization") != "Bearer api-token" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		items := cols
		if r.URL.Query().Get("filters") != "" { // the page after the first: everything fits on one
			items = []map[string]any{}
		}
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	}))
	defer api.Close()
	c.env = append(c.env, "ARVADOS_API_HOST="+strings.TrimPrefix(api.URL, "https://"), "ARVADOS_API_TOKEN=api-token", "ARVADOS_API_HOST_INSECURE=1")
	c.ageAll()
	if out, err := c.run("balance", "--collections", "--commit"); err != nil || !strings.Contains(out, "live set: 2 collections, 1 blocks") {
		t.Fatalf("balance --collections --commit: %v\n%s", err, out)
	}
	c.waitFor("the collection's block has 3 copies and the other none", func() bool {
		live, _ := c.holders(wantHash)
		gone, _ := c.holders(dropHash)
		return len(live) == 3 && len(gone) == 0
	})
	if out, err := c.run("check", "--collections"); err != nil {
		t.Errorf("check --collections: %v\n%s", err, out)
	}
	if out, err := c.run("check", "--collections", mf); exitCode(err) != 2 || !strings.Contains(out, "takes no MANIFEST") {
		t.Errorf("check --collections with a manifest: %v\n%s", err, out)
	}
}

// keep balance takes the signing TTL from --config as the servers do,
// and says which it used: with the servers' 1m, hour-old garbage is
// trashed (--gc); with the default 336h it is not.
func TestE2EBalanceSigningTTLFromConfig(t *testing.T) {
	c := newBalanceCluster(t, 2)
	keepMf, _ := c.put([]byte("kept"), 2)
	c.put([]byte("garbage"), 2)
	c.ageAll()
	config := filepath.Join(t.TempDir(), "config.yml")
	os.WriteFile(config, []byte("Clusters:\n  zzzzz:\n    Collections:\n      BlobSigningTTL: "+e2eSigningTTL+"\n"), 0o644)
	base := []string{"balance", "--gc", "--services", c.svcFile, "--system-token-file", c.tokenFile}
	tests := []struct {
		args  []string
		ttl   string
		trash string
	}{
		{[]string{"--config", config}, "signing TTL 1m0s (Collections.BlobSigningTTL in " + config + ")", "0 pulls and 2 trash items"},
		{nil, "signing TTL 336h0m0s (the default; give --config or --signing-ttl", "0 pulls and 0 trash items"},
		{[]string{"--config", config, "--signing-ttl", "500h"}, "signing TTL 500h0m0s (--signing-ttl)", "0 pulls and 0 trash items"},
	}
	for _, tt := range tests {
		out, stderr, err := proctest.Run(t, c.env, nil, append(append(slices.Clone(base), tt.args...), keepMf)...)
		if err != nil || !strings.Contains(out, tt.ttl) || !strings.Contains(out, tt.trash) {
			t.Errorf("balance %v: %v\n%s%s\nwant %q and %q", tt.args, err, out, stderr, tt.ttl, tt.trash)
		}
	}
	if _, stderr, err := proctest.Run(t, c.env, nil, append(base, "--cluster", "zzzzz", keepMf)...); exitCode(err) != 2 || !strings.Contains(stderr, "--cluster needs --config") {
		t.Errorf("--cluster without --config: %v\n%s", err, stderr)
	}
}

// A pull that fails is reported, not lost: balance --wait lists it with
// the server's reason and exits non-zero, and the next run says the
// block is still short because of it.
func TestE2EBalanceFailedPull(t *testing.T) {
	c := newBalanceCluster(t, 2)
	mf, hash := c.put(bytes.Repeat([]byte("corrupt source "), 100000), 1)
	live, _ := c.holders(hash)
	if len(live) != 1 {
		t.Fatalf("block on %v", live)
	}
	path := filepath.Join(c.dirs[live[0]], hash[:3], hash)
	data, _ := os.ReadFile(path)
	data[0] ^= 0xff // the only copy goes bad: every pull of it fails
	os.WriteFile(path, data, 0o644)
	out, err := c.run("balance", "--replicas", "2", "--commit", "--wait", mf)
	if exitCode(err) != 1 || !strings.Contains(out, "pull failed: "+hash) || !strings.Contains(out, "1 pulls failed") {
		t.Fatalf("balance --wait with a failing pull: %v\n%s", err, out)
	}
	out, err = c.run("balance", "--replicas", "2", mf)
	if exitCode(err) != 1 || !strings.Contains(out, "still short: "+hash) || !strings.Contains(out, "the last pull to "+c.svcs[1-live[0]].UUID+" failed") {
		t.Fatalf("balance after the failed pull: %v\n%s", err, out)
	}

	// A pull that works: --wait says so and exits 0.
	mf2, _ := c.put(bytes.Repeat([]byte("healthy "), 100000), 1)
	if out, err := c.run("balance", "--replicas", "2", "--commit", "--wait", mf2); err != nil || !strings.Contains(out, "every pull was worked and none failed") {
		t.Fatalf("balance --wait: %v\n%s", err, out)
	}
	if out, err := c.run("check", "--replicas", "2", mf2); err != nil {
		t.Errorf("check after balance --wait: %v\n%s", err, out)
	}
}
