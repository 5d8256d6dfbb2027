package keepstore_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/dirvolume"
	"github.com/keepproject/keep/locator"
)

func TestPutGet(t *testing.T) {
	ts := start(t, keepstore.Config{})
	data := []byte("foo")
	loc, h := ts.put(t, data)
	if loc != "acbd18db4cc2f85cedef654fccc4a4d8+3" {
		t.Errorf("PUT returned %q", loc)
	}
	if got := h.Get("X-Keep-Replicas-Stored"); got != "1" {
		t.Errorf("X-Keep-Replicas-Stored = %q", got)
	}
	if got := h.Get("X-Keep-Storage-Classes-Confirmed"); got != "default=1" {
		t.Errorf("X-Keep-Storage-Classes-Confirmed = %q", got)
	}
	for _, path := range []string{"/" + loc, "//" + loc, "/" + loc + "+K@zzzzz", "/" + hashOf(data)} {
		code, body, h := ts.do(t, "GET", path, "", nil)
		if code != 200 || body != "foo" || h.Get("Content-Length") != "3" {
			t.Errorf("GET %s = %d %q (Content-Length %q)", path, code, body, h.Get("Content-Length"))
		}
		code, body, h = ts.do(t, "HEAD", path, "", nil)
		if code != 200 || body != "" || h.Get("Content-Length") != "3" {
			t.Errorf("HEAD %s = %d %q (Content-Length %q)", path, code, body, h.Get("Content-Length"))
		}
	}
	if code, _, _ := ts.do(t, "GET", "/"+hashOf([]byte("nope"))+"+4", "", nil); code != 404 {
		t.Errorf("GET of missing block = %d", code)
	}
	// The empty block is stored like any other.
	if code, _, _ := ts.do(t, "GET", "/"+locator.EmptyHash+"+0", "", nil); code != 404 {
		t.Errorf("GET of unstored empty block = %d, want 404", code)
	}
	ts.put(t, nil)
	if code, body, _ := ts.do(t, "GET", "/"+locator.EmptyHash+"+0", "", nil); code != 200 || body != "" {
		t.Errorf("GET of empty block = %d %q", code, body)
	}
}

func TestPutSizeHintAndChunked(t *testing.T) {
	ts := start(t, keepstore.Config{})
	data := []byte("chunked body")
	// A body of unknown length (chunked), with and without a size hint.
	for _, path := range []string{"/" + hashOf(data), "/" + hashOf(data) + "+12+Zfoo"} {
		req, _ := http.NewRequest("PUT", ts.URL+path, io.MultiReader(bytes.NewReader(data)))
		req.Header.Set("Authorization", "OAuth2 "+token)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != hashOf(data)+"+12\n" {
			t.Errorf("chunked PUT %s = %d %q", path, resp.StatusCode, body)
		}
	}
	// A chunked body longer or shorter than the size hint.
	foo := hashOf([]byte("foo"))
	for body, want := range map[string]string{"foofoo": "body is longer than 3 bytes", "fo": "body is 2 bytes, want 3"} {
		req, _ := http.NewRequest("PUT", ts.URL+"/"+foo+"+3", io.MultiReader(strings.NewReader(body)))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(msg), want) {
			t.Errorf("chunked PUT of %q to %s+3 = %d %q, want 400 %q", body, foo, resp.StatusCode, msg, want)
		}
	}
	if _, err := os.Stat(filepath.Join(ts.dirs[0], foo[:3], foo)); !os.IsNotExist(err) {
		t.Errorf("a bad-length body was stored: %v", err)
	}
}

// TestPutOversizeStreaming sends a chunked body that turns out too big.
func TestPutOversizeStreaming(t *testing.T) {
	ts := start(t, keepstore.Config{})
	keepstore.SetMaxBlockSize(ts.srv, 1000)
	data := bytes.Repeat([]byte("x"), 1001)
	req, _ := http.NewRequest("PUT", ts.URL+"/"+hashOf(data), io.MultiReader(bytes.NewReader(data)))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversize chunked PUT = %d, want 413", resp.StatusCode)
	}
	if f := ts.files(t); len(f) != 0 {
		t.Errorf("files left: %v", f)
	}
	ts.put(t, data[:1000])
}

func TestPutSigned(t *testing.T) {
	signer := locator.Signer{Key: []byte("secret"), TTL: time.Hour}
	ts := start(t, keepstore.Config{SigningKey: signer.Key, SigningTTL: signer.TTL})
	loc, _ := ts.put(t, []byte("foo"))
	l, err := locator.Parse(loc)
	if err != nil || l.Size != 3 || len(l.HintsWithPrefix("A")) != 1 {
		t.Fatalf("PUT returned %q (%v), want a signed locator", loc, err)
	}
	if err := signer.Verify(l, token, time.Now()); err != nil {
		t.Errorf("returned signature does not verify: %v", err)
	}
	if err := signer.Verify(l, token, time.Now().Add(2*time.Hour)); err == nil {
		t.Error("signature valid beyond the TTL")
	}
	// Signatures are not required for reads unless configured.
	if code, _, _ := ts.do(t, "GET", "/"+hashOf([]byte("foo")), "", nil); code != 200 {
		t.Errorf("unsigned GET with RequireSignatures off = %d", code)
	}
}

// TestDedup: a block already stored is compared, touched and counted,
// not written again.
func TestDedup(t *testing.T) {
	ts := start(t, keepstore.Config{})
	data := []byte("dedup me")
	ts.put(t, data)
	p := filepath.Join(ts.dirs[0], hashOf(data)[:3], hashOf(data))
	old := time.Now().Add(-24 * time.Hour)
	os.Chtimes(p, old, old)
	before, _ := os.Stat(p)
	_, h := ts.put(t, data)
	after, _ := os.Stat(p)
	if !os.SameFile(before, after) {
		t.Error("second PUT rewrote the block file")
	}
	if !after.ModTime().After(old.Add(time.Hour)) {
		t.Errorf("second PUT did not touch the block: mtime %v", after.ModTime())
	}
	if h.Get("X-Keep-Replicas-Stored") != "1" {
		t.Errorf("replicas = %q", h.Get("X-Keep-Replicas-Stored"))
	}
	// A body that does not match its hash is still a client error.
	if code, body, _ := ts.do(t, "PUT", "/"+hashOf(data), token, []byte("dedup mE")); code != 400 || !strings.Contains(body, "hash mismatch") {
		t.Errorf("mismatched PUT of stored block = %d %q", code, body)
	}
	// A stored copy that fails its own hash is replaced by a correct
	// body (see TestRepair); one that hashes right but differs is a
	// collision (TestCollision).
}

// Two different 128-byte messages with one MD5 (Wang and Yu, 2005).
var (
	collisionA = mustHex("d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f89" +
		"55ad340609f4b30283e488832571415a085125e8f7cdc99fd91dbdf280373c5b" +
		"d8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0" +
		"e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70")
	collisionB = mustHex("d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f89" +
		"55ad340609f4b30283e4888325f1415a085125e8f7cdc99fd91dbd7280373c5b" +
		"d8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0" +
		"e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// TestCollision: a stored copy that hashes right but differs from the
// upload, a real MD5 collision, is kept and the upload refused.
func TestCollision(t *testing.T) {
	if hashOf(collisionA) != hashOf(collisionB) || bytes.Equal(collisionA, collisionB) {
		t.Fatal("the collision pair does not collide")
	}
	ts := start(t, keepstore.Config{})
	ts.put(t, collisionA)
	if code, body, _ := ts.do(t, "PUT", "/"+hashOf(collisionB), token, collisionB); code != 500 || !strings.Contains(body, "hash collision") {
		t.Errorf("PUT colliding with a valid stored copy = %d %q, want 500 hash collision", code, body)
	}
	p := filepath.Join(ts.dirs[0], hashOf(collisionA)[:3], hashOf(collisionA))
	if got, _ := os.ReadFile(p); !bytes.Equal(got, collisionA) {
		t.Error("the collision overwrote the stored copy")
	}
}

// TestRepair: a correct upload over a stored copy that fails its own
// hash (empty, truncated, longer, a flipped bit) replaces it, whether
// the difference comes early or late in the block; a wrong upload over
// it changes nothing.
func TestRepair(t *testing.T) {
	big := bytes.Repeat([]byte("repair me "), (3<<20)/10) // several buffers
	flipLate := bytes.Clone(big)
	flipLate[len(flipLate)-2] ^= 1
	tests := []struct {
		name      string
		data, bad []byte
	}{
		{"empty", []byte("small block"), nil},
		{"truncated", big, big[:len(big)/2]},
		{"longer", big, append(bytes.Clone(big), "tail"...)},
		{"flipped late", big, flipLate},
		{"flipped early", []byte("small block 2"), []byte("Small block 2")},
	}
	ts := start(t, keepstore.Config{})
	for i, tt := range tests {
		corrupt(t, ts.dirs[0], tt.data, tt.bad)
		p := filepath.Join(ts.dirs[0], hashOf(tt.data)[:3], hashOf(tt.data))
		wrong := bytes.Clone(tt.data)
		wrong[0] ^= 1
		if code, _, _ := ts.do(t, "PUT", "/"+hashOf(tt.data), token, wrong); code != 400 {
			t.Errorf("%s: wrong upload over a corrupt copy = %d, want 400", tt.name, code)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, tt.bad) {
			t.Errorf("%s: a wrong upload changed the corrupt copy", tt.name)
		}
		if code, body, h := ts.do(t, "PUT", "/"+hashOf(tt.data), token, tt.data); code != 200 || h.Get("X-Keep-Replicas-Stored") != "1" {
			t.Errorf("%s: correct upload over a corrupt copy = %d %q, want 200", tt.name, code, body)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, tt.data) {
			t.Errorf("%s: stored copy not repaired (%d bytes, want %d)", tt.name, len(got), len(tt.data))
		}
		if _, body, _ := ts.do(t, "GET", "/metrics", mgmtToken, nil); !strings.Contains(body, fmt.Sprintf("keepstore_blocks_repaired_total %d", i+1)) {
			t.Errorf("%s: metrics do not count %d repairs", tt.name, i+1)
		}
	}
}

func TestStorageClasses(t *testing.T) {
	vols := dirVolumes(t, 4)
	vols[0].Classes = nil // default
	vols[1].Classes = []string{"a"}
	vols[2].Classes = []string{"b", "c"}
	vols[3].Classes = []string{"r2"}
	vols[3].Replication = 2
	ts := start(t, keepstore.Config{Volumes: vols})
	tests := []struct {
		header    string
		code      int
		replicas  string
		confirmed string
		dirs      []int
	}{
		{"", 200, "1", "default=1", []int{0}},
		{" , a , ", 200, "1", "a=1", []int{1}},
		{"a,b", 200, "2", "a=1, b=1, c=1", []int{1, 2}},
		{"a, nonexistent", 200, "1", "a=1", []int{1}},
		{"r2", 200, "2", "r2=2", []int{3}},
		{"nonexistent", 507, "", "", nil},
	}
	for i, tt := range tests {
		data := []byte("classes " + string(rune('A'+i)))
		var hdr []string
		if tt.header != "" {
			hdr = []string{"X-Keep-Storage-Classes", tt.header}
		}
		code, body, h := ts.do(t, "PUT", "/"+hashOf(data), token, data, hdr...)
		if code != tt.code || h.Get("X-Keep-Replicas-Stored") != tt.replicas || h.Get("X-Keep-Storage-Classes-Confirmed") != tt.confirmed {
			t.Errorf("classes %q: %d %q replicas %q confirmed %q; want %d %s %q",
				tt.header, code, body, h.Get("X-Keep-Replicas-Stored"), h.Get("X-Keep-Storage-Classes-Confirmed"), tt.code, tt.replicas, tt.confirmed)
		}
		var on []int
		for j, d := range ts.dirs {
			if _, err := os.Stat(filepath.Join(d, hashOf(data)[:3], hashOf(data))); err == nil {
				on = append(on, j)
			}
		}
		if len(on) != len(tt.dirs) || (len(on) > 0 && (on[0] != tt.dirs[0] || on[len(on)-1] != tt.dirs[len(tt.dirs)-1])) {
			t.Errorf("classes %q: block on volumes %v, want %v", tt.header, on, tt.dirs)
		}
	}
}

// TestPutVolumesStored: a successful PUT names, in X-Keep-Volumes-Stored,
// the volumes holding the block afterwards, each with its Replication:
// their sum is X-Keep-Replicas-Stored.
func TestPutVolumesStored(t *testing.T) {
	vols := dirVolumes(t, 3)
	vols[0].ID = "zzzzz-nyw5e-000000000000000"
	vols[1].ID, vols[1].Classes = "zzzzz-nyw5e-000000000000001", []string{"a"}
	vols[2].ID, vols[2].Classes, vols[2].Replication = "zzzzz-nyw5e-000000000000002", []string{"b"}, 2
	ts := start(t, keepstore.Config{Volumes: vols})
	tests := []struct {
		name, classes, replicas, volumes string
	}{
		{"one volume", "", "1", "zzzzz-nyw5e-000000000000000=1"},
		{"its replication", "b", "2", "zzzzz-nyw5e-000000000000002=2"},
		{"two volumes for two classes", "a, b", "3", "zzzzz-nyw5e-000000000000001=1, zzzzz-nyw5e-000000000000002=2"},
	}
	for _, tt := range tests {
		data := []byte("volumes " + tt.name)
		var hdr []string
		if tt.classes != "" {
			hdr = []string{"X-Keep-Storage-Classes", tt.classes}
		}
		// The second PUT finds the copies the first made, and names them.
		for _, when := range []string{"stored", "found stored"} {
			_, h := ts.put(t, data, hdr...)
			if h.Get("X-Keep-Replicas-Stored") != tt.replicas || h.Get("X-Keep-Volumes-Stored") != tt.volumes {
				t.Errorf("%s, %s: replicas %q volumes %q; want %s %q", tt.name, when,
					h.Get("X-Keep-Replicas-Stored"), h.Get("X-Keep-Volumes-Stored"), tt.replicas, tt.volumes)
			}
		}
	}

	// A volume id the header cannot carry: no header, so that clients
	// count the answer as they count an Arvados keepstore's.
	odd := dirVolumes(t, 1)
	odd[0].ID = "vol one"
	ts = start(t, keepstore.Config{Volumes: odd})
	if _, h := ts.put(t, []byte("odd volume id")); h.Get("X-Keep-Replicas-Stored") != "1" || len(h.Values("X-Keep-Volumes-Stored")) != 0 {
		t.Errorf("volume %q: replicas %q volumes %q; want 1 and no header", odd[0].ID, h.Get("X-Keep-Replicas-Stored"), h.Values("X-Keep-Volumes-Stored"))
	}
}

// diskServices describes the servers as the disk services of a cluster.
func diskServices(servers ...*testServer) []keepclient.Service {
	var out []keepclient.Service
	for i, ts := range servers {
		addr := ts.Listener.Addr().(*net.TCPAddr)
		out = append(out, keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", i), Host: addr.IP.String(), Port: addr.Port, Type: keepclient.TypeDisk})
	}
	return out
}

// TestClientCountsVolumes writes with our client to real servers: a
// volume with Replication 2 holds two of the replicas wanted, and a
// volume two servers share (an S3 bucket, say) holds one, however many
// servers answer for it.
func TestClientCountsVolumes(t *testing.T) {
	replicated := dirVolumes(t, 1)
	replicated[0].Replication = 2
	shared := keepstore.VolumeConfig{Volume: mustDir(t, t.TempDir())}
	tests := []struct {
		name    string
		servers []keepstore.Config
		stored  int
		puts    int
	}{
		{"one server, a volume of replication 2", []keepstore.Config{{Volumes: replicated}}, 2, 1},
		{"two servers sharing a volume", []keepstore.Config{{Volumes: []keepstore.VolumeConfig{shared}}, {Volumes: []keepstore.VolumeConfig{shared}}}, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var servers []*testServer
			for _, cfg := range tt.servers {
				servers = append(servers, start(t, cfg))
			}
			kc, err := keepclient.New(keepclient.Options{Services: diskServices(servers...), Token: token, RetryDelay: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kc.Close)
			data := []byte("counted by volume: " + tt.name)
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
			var ire *keepclient.InsufficientReplicasError
			switch {
			case tt.stored == 2 && err != nil:
				t.Fatalf("Put: %v", err)
			case tt.stored < 2 && !errors.As(err, &ire):
				t.Fatalf("Put: %v, want an InsufficientReplicasError", err)
			}
			if res.Replicas != tt.stored || len(res.Attempts) != tt.puts {
				t.Errorf("stored %d in %d uploads, want %d in %d (attempts %+v)", res.Replicas, len(res.Attempts), tt.stored, tt.puts, res.Attempts)
			}
		})
	}
	if f := listFiles(t, shared.Volume.(*dirvolume.Directory).Root()); len(f) != 1 {
		t.Errorf("shared volume holds %v, want one block file", f)
	}
}

// TestRendezvous: each block goes to the volume with the smallest
// md5(hash+volumeID), and only there.
func TestRendezvous(t *testing.T) {
	ts := start(t, keepstore.Config{Volumes: dirVolumes(t, 3)})
	ids := []string{}
	for _, v := range ts.srv.Status(t.Context()).Volumes {
		ids = append(ids, v.ID)
	}
	used := map[int]bool{}
	for i := range 12 {
		data := []byte("rendezvous " + string(rune('a'+i)))
		hash := hashOf(data)
		ts.put(t, data)
		best := 0
		for j, id := range ids {
			if hashOf([]byte(hash+id)) < hashOf([]byte(hash+ids[best])) {
				best = j
			}
		}
		for j, d := range ts.dirs {
			_, err := os.Stat(filepath.Join(d, hash[:3], hash))
			if (err == nil) != (j == best) {
				t.Errorf("block %s on volume %d: %v; want it on volume %d only", hash, j, err == nil, best)
			}
		}
		used[best] = true
	}
	if len(used) < 2 {
		t.Errorf("12 blocks all went to one of 3 volumes")
	}
}

func TestFullAndReadOnly(t *testing.T) {
	vols := dirVolumes(t, 1)
	vols[0].Capacity = 10
	ts := start(t, keepstore.Config{Volumes: vols})
	ts.put(t, []byte("12345678"))
	if code, body, _ := ts.do(t, "PUT", "/"+hashOf([]byte("abc")), token, []byte("abc")); code != 507 || !strings.Contains(body, "insufficient storage") {
		t.Errorf("PUT to full volume = %d %q", code, body)
	}
	ts.put(t, []byte("ab")) // exactly fills it

	// With two volumes, a block the full one cannot take goes to the other.
	two := dirVolumes(t, 2)
	two[0].Capacity = 1
	ts = start(t, keepstore.Config{Volumes: two})
	for i := range 6 {
		data := []byte(fmt.Sprint("fits on one volume ", i))
		ts.put(t, data)
		if _, err := os.Stat(filepath.Join(two[1].Path, hashOf(data)[:3], hashOf(data))); err != nil {
			t.Errorf("block %d not on the volume with room: %v", i, err)
		}
	}
	if f := listFiles(t, two[0].Path); len(f) != 0 {
		t.Errorf("files on the full volume: %v", f)
	}

	ro := dirVolumes(t, 1)
	ro[0].ReadOnly = true
	os.MkdirAll(filepath.Join(ro[0].Path, hashOf([]byte("old"))[:3]), 0o755)
	os.WriteFile(filepath.Join(ro[0].Path, hashOf([]byte("old"))[:3], hashOf([]byte("old"))), []byte("old"), 0o644)
	ts = start(t, keepstore.Config{Volumes: ro})
	if code, body, _ := ts.do(t, "PUT", "/"+hashOf([]byte("abc")), token, []byte("abc")); code != 507 || !strings.Contains(body, "all volumes are read-only") {
		t.Errorf("PUT to read-only server = %d %q", code, body)
	}
	if code, body, _ := ts.do(t, "GET", "/"+hashOf([]byte("old"))+"+3", "", nil); code != 200 || body != "old" {
		t.Errorf("GET from read-only volume = %d %q", code, body)
	}
}

// TestVolumeUnavailable removes volume directories (and, when not root,
// makes them unwritable) under a running server.
func TestVolumeUnavailable(t *testing.T) {
	ts := start(t, keepstore.Config{Volumes: dirVolumes(t, 2)})
	var before []string
	for i := range 6 {
		data := []byte("before " + string(rune('a'+i)))
		ts.put(t, data)
		before = append(before, hashOf(data))
	}
	os.RemoveAll(ts.dirs[0])
	for i := range 6 {
		ts.put(t, []byte("after "+string(rune('a'+i))))
	}
	for _, h := range before {
		code, _, _ := ts.do(t, "GET", "/"+h+"+8", "", nil)
		if code != 200 && code != 404 {
			t.Errorf("GET after volume removal = %d, want 200 or 404", code)
		}
	}
	if os.Geteuid() != 0 {
		n := len(listFiles(t, ts.dirs[1]))
		// Root ignores permissions, so this case only runs as a user.
		filepath.WalkDir(ts.dirs[1], func(p string, d os.DirEntry, err error) error {
			if d != nil && d.IsDir() {
				os.Chmod(p, 0o555)
			}
			return nil
		})
		t.Cleanup(func() {
			filepath.WalkDir(ts.dirs[1], func(p string, d os.DirEntry, err error) error {
				if d != nil && d.IsDir() {
					os.Chmod(p, 0o755)
				}
				return nil
			})
		})
		data := []byte("unwritable")
		if code, body, h := ts.do(t, "PUT", "/"+hashOf(data), token, data); code != 503 || !strings.Contains(body, "volume unavailable") || h.Get("Retry-After") == "" {
			t.Errorf("PUT with only an unwritable volume = %d %q Retry-After %q, want 503 with Retry-After", code, body, h.Get("Retry-After"))
		}
		if f := listFiles(t, ts.dirs[1]); len(f) != n {
			t.Errorf("files on unwritable volume: %v", f)
		}
	}
	os.RemoveAll(ts.dirs[1])
	data := []byte("nowhere")
	if code, body, h := ts.do(t, "PUT", "/"+hashOf(data), token, data); code != 503 || !strings.Contains(body, "volume unavailable") || h.Get("Retry-After") == "" {
		t.Errorf("PUT with no volume directories = %d %q Retry-After %q, want 503 with Retry-After", code, body, h.Get("Retry-After"))
	}
	if code, _, _ := ts.do(t, "GET", "/"+before[0]+"+8", "", nil); code != 404 {
		t.Errorf("GET with no volume directories = %d, want 404", code)
	}
	if code, _, _ := ts.do(t, "GET", "/_health/ping", mgmtToken, nil); code != 200 {
		t.Errorf("health check after losing volumes = %d", code)
	}
}

// unwritable is a Directory whose storage has become unwritable (a
// read-only remount, say), which chmod cannot arrange for root. Reads
// still work.
type unwritable struct{ *dirvolume.Directory }

func (u unwritable) Put(ctx context.Context, hash string, r io.Reader, size int64) error {
	return &fs.PathError{Op: "open", Path: filepath.Join(u.Root(), hash[:3]), Err: syscall.EROFS}
}

func (u unwritable) Touch(ctx context.Context, hash string) error {
	return &fs.PathError{Op: "chtimes", Path: filepath.Join(u.Root(), hash[:3], hash), Err: syscall.EROFS}
}

// TestVolumeUnwritable: a volume that stops taking writes is skipped for
// the next one; with none left, PUT fails with 503, stores nothing, and
// the server goes on serving reads.
func TestVolumeUnwritable(t *testing.T) {
	vols := dirVolumes(t, 2)
	vols[0].ID, vols[1].ID = "zzzzz-nyw5e-000000000000000", "zzzzz-nyw5e-000000000000001"
	old := []byte("stored before")
	corrupt(t, vols[0].Path, old, old) // a good copy, written directly
	vols[0].Volume = unwritable{mustDir(t, vols[0].Path)}
	ts := start(t, keepstore.Config{Volumes: vols})
	// Blocks that rendezvous would put on the unwritable volume first.
	for i, n := 0, 0; n < 3; i++ {
		data := []byte(fmt.Sprint("around the unwritable volume ", i))
		h := hashOf(data)
		if hashOf([]byte(h+vols[0].ID)) > hashOf([]byte(h+vols[1].ID)) {
			continue
		}
		n++
		ts.put(t, data)
		if _, err := os.Stat(filepath.Join(vols[1].Path, h[:3], h)); err != nil {
			t.Errorf("block %d not on the writable volume: %v", i, err)
		}
	}

	ts = start(t, keepstore.Config{Volumes: vols[:1]})
	before := listFiles(t, vols[0].Path)
	for _, data := range [][]byte{[]byte("nowhere to go"), old} {
		code, body, h := ts.do(t, "PUT", "/"+hashOf(data), token, data)
		if code != 503 || !strings.Contains(body, "volume unavailable") || h.Get("Retry-After") == "" {
			t.Errorf("PUT %q with only an unwritable volume = %d %q Retry-After %q, want 503 volume unavailable with Retry-After",
				data, code, body, h.Get("Retry-After"))
		}
	}
	if after := listFiles(t, vols[0].Path); !slices.Equal(after, before) {
		t.Errorf("files on the unwritable volume changed: %v -> %v", before, after)
	}
	if code, body, _ := ts.do(t, "GET", "/"+hashOf(old)+"+13", "", nil); code != 200 || body != string(old) {
		t.Errorf("GET from unwritable volume = %d %q", code, body)
	}
	ts.waitLog(t, "read-only file system")
}
