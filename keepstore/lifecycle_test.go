package keepstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/dirvolume"
	"github.com/keepproject/keep/locator"
)

const sysToken = "systemroottoken"

// age sets the modification time of data's block file in dir to d ago
// and returns it as the index would list it.
func age(t *testing.T, dir string, data []byte, d time.Duration) time.Time {
	t.Helper()
	p := filepath.Join(dir, hashOf(data)[:3], hashOf(data))
	mt := time.Now().Add(-d)
	if err := os.Chtimes(p, mt, mt); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

// sendJSON sends v as the body of a request with the system token.
func (ts *testServer) sendJSON(t *testing.T, method, path string, v any) (int, string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ := ts.do(t, method, path, sysToken, b)
	return code, body
}

// status reads the server's /_status.
func (ts *testServer) status(t *testing.T) keepstore.Status {
	t.Helper()
	return ts.srv.Status(context.Background())
}

// waitWork waits until the pull or trash list has nothing queued or in
// progress and has handled at least n items in all.
func waitWork(t *testing.T, ts *testServer, list string, n int64) keepstore.WorkStatus {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := ts.status(t).TrashQueue
		if list == "pull" {
			st = ts.status(t).PullQueue
		}
		if st.Queued == 0 && st.InProgress == 0 && st.Done+st.Skipped+st.Failed >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s list never finished: %+v", list, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestManagementRoutes: every admin route wants the system token (401
// without a token, 403 with another), every management route the
// management token, and management routes are off (404) when no
// management token is configured.
func TestManagementRoutes(t *testing.T) {
	ts := start(t, keepstore.Config{SystemToken: sysToken})
	data := []byte("management")
	ts.put(t, data)
	loc := locator.New(data).String()
	uuid := ts.status(t).Volumes[0].ID
	tests := []struct {
		method, path, body string
		good               string // the token that opens the route
		code               int    // with it
	}{
		{"GET", "/index", "", sysToken, 200},
		{"GET", "/index/" + hashOf(data)[:2], "", sysToken, 200},
		{"GET", "/mounts", "", sysToken, 200},
		{"GET", "/mounts/" + uuid + "/blocks", "", sysToken, 200},
		{"GET", "/mounts/" + uuid + "/blocks?prefix=" + hashOf(data)[:3], "", sysToken, 200},
		{"GET", "/mounts/zzzzz-nyw5e-000000000000000/blocks", "", sysToken, 404},
		{"GET", "/mounts/" + uuid + "/nonsense", "", sysToken, 400},
		{"PUT", "/pull", "[]", sysToken, 200},
		{"PUT", "/pull", `[{"locator":"` + hashOf(data) + `","servers":["http://x"]}]`, sysToken, 400}, // no size
		{"PUT", "/pull", `[{"locator":"` + loc + `","servers":[]}]`, sysToken, 400},
		{"PUT", "/pull", `[{"locator":"` + loc + `","servers":["ftp://x"]}]`, sysToken, 400},
		{"PUT", "/pull", `{"not":"a list"}`, sysToken, 400},
		{"PUT", "/trash", "[]", sysToken, 200},
		{"PUT", "/trash", `[{"locator":"nonsense","block_mtime":1}]`, sysToken, 400},
		{"PUT", "/trash", `[`, sysToken, 400},
		{"PUT", "/untrash/" + loc, "", sysToken, 404}, // nothing in the trash
		{"PUT", "/untrash/nonsense", "", sysToken, 400},
		{"TOUCH", "/" + loc, "", sysToken, 200},
		{"TOUCH", "/" + locator.New([]byte("absent")).String(), "", sysToken, 404},
		{"DELETE", "/" + loc, "", sysToken, 200}, // too new: kept, see TestDelete
		{"DELETE", "/" + locator.New([]byte("absent")).String(), "", sysToken, 404},
		{"GET", "/_status", "", mgmtToken, 200},
		{"GET", "/metrics", "", mgmtToken, 200},
		{"GET", "/_health/ping", "", mgmtToken, 200},
		{"HEAD", "/_health/ping", "", mgmtToken, 200},
		{"GET", "/_health/nonsense", "", mgmtToken, 404},
	}
	for _, tt := range tests {
		name := tt.method + " " + tt.path
		var body []byte
		if tt.body != "" {
			body = []byte(tt.body)
		}
		if code, msg, _ := ts.do(t, tt.method, tt.path, "", body); code != 401 {
			t.Errorf("%s without a token: %d %q, want 401", name, code, msg)
		}
		wrong := sysToken
		if tt.good == sysToken {
			wrong = mgmtToken
		}
		if code, msg, _ := ts.do(t, tt.method, tt.path, wrong, body); code != 403 {
			t.Errorf("%s with another token: %d %q, want 403", name, code, msg)
		}
		if code, msg, _ := ts.do(t, tt.method, tt.path, tt.good, body); code != tt.code {
			t.Errorf("%s: %d %q, want %d", name, code, msg, tt.code)
		}
	}
	// Without a management token, the management routes are off.
	noMgmt := start(t, keepstore.Config{SystemToken: sysToken})
	keepstore.SetManagementToken(noMgmt.srv, "")
	for _, path := range []string{"/_status", "/metrics", "/_health/ping"} {
		if code, msg, _ := noMgmt.do(t, "GET", path, sysToken, nil); code != 404 || !strings.Contains(msg, "disabled") {
			t.Errorf("GET %s with no management token configured: %d %q, want 404 disabled", path, code, msg)
		}
	}
}

// TestMounts: GET /mounts describes each volume as keep-balance reads
// it, and /mounts/UUID/blocks lists one volume only.
func TestMounts(t *testing.T) {
	vols := dirVolumes(t, 2)
	vols[1].ReadOnly = true
	vols[1].Classes = []string{"archive"}
	vols[1].Replication = 2
	vols[1].ID = "zzzzz-nyw5e-000000000000002"
	ts := start(t, keepstore.Config{SystemToken: sysToken, Volumes: vols})
	a, b := []byte("on volume 0"), []byte("on volume 1")
	ts.put(t, a)
	// b is put straight into the read-only volume's directory.
	os.MkdirAll(filepath.Join(vols[1].Path, hashOf(b)[:3]), 0o755)
	os.WriteFile(filepath.Join(vols[1].Path, hashOf(b)[:3], hashOf(b)), b, 0o644)

	code, body, _ := ts.do(t, "GET", "/mounts", sysToken, nil)
	var mounts []map[string]any
	if err := json.Unmarshal([]byte(body), &mounts); code != 200 || err != nil || len(mounts) != 2 {
		t.Fatalf("GET /mounts: %d %q (%v)", code, body, err)
	}
	uuid0, _ := mounts[0]["uuid"].(string)
	host, _ := os.Hostname()
	want0 := map[string]any{"uuid": uuid0, "device_id": host + ":" + vols[0].Path, "read_only": false, "allow_write": true, "allow_trash": true,
		"replication": 1.0, "storage_classes": map[string]any{"default": true}}
	want1 := map[string]any{"uuid": "zzzzz-nyw5e-000000000000002", "device_id": host + ":" + vols[1].Path, "read_only": true, "allow_write": false,
		"allow_trash": false, "replication": 2.0, "storage_classes": map[string]any{"archive": true}}
	for i, want := range []map[string]any{want0, want1} {
		if got, _ := json.Marshal(mounts[i]); string(got) != string(mustJSON(want)) {
			t.Errorf("mount %d = %s, want %s", i, got, mustJSON(want))
		}
	}
	if !strings.HasPrefix(uuid0, "keep0-nyw5e-") || len(uuid0) != 27 {
		t.Errorf("volume uuid %q is not in Arvados form", uuid0)
	}
	for _, tt := range []struct {
		uuid string
		data []byte
	}{{uuid0, a}, {"zzzzz-nyw5e-000000000000002", b}} {
		code, body, _ := ts.do(t, "GET", "/mounts/"+tt.uuid+"/blocks", sysToken, nil)
		want := fmt.Sprintf("%s+%d ", hashOf(tt.data), len(tt.data))
		if code != 200 || !strings.HasPrefix(body, want) || strings.Count(body, "\n") != 2 || !strings.HasSuffix(body, "\n\n") {
			t.Errorf("index of mount %s: %d %q, want one line for %s and a blank line", tt.uuid, code, body, want)
		}
		other := "0"
		if hashOf(tt.data)[0] == '0' {
			other = "1"
		}
		if code, body, _ := ts.do(t, "GET", "/mounts/"+tt.uuid+"/blocks?prefix="+other, sysToken, nil); code != 200 || body != "\n" {
			t.Errorf("index of mount %s with another prefix: %d %q, want an empty listing", tt.uuid, code, body)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestTrashList: a trash list moves old blocks to the trash, where they
// are no longer served or listed, can be restored with untrash, and are
// deleted by the sweep after the trash lifetime. Items for blocks newer
// than the signing TTL, or whose mtime is not the stored copy's, or for
// unknown mounts, are skipped.
func TestTrashList(t *testing.T) {
	ts := start(t, keepstore.Config{SystemToken: sysToken, SigningTTL: time.Hour, TrashLifetime: 24 * time.Hour})
	dir := ts.dirs[0]
	blocks := map[string][]byte{}
	for _, name := range []string{"old", "new", "changed", "elsewhere"} {
		blocks[name] = []byte("trash list block " + name)
		ts.put(t, blocks[name])
	}
	mtimes := map[string]time.Time{}
	for _, name := range []string{"old", "changed", "elsewhere"} {
		mtimes[name] = age(t, dir, blocks[name], 2*time.Hour)
	}
	mtimes["new"] = age(t, dir, blocks["new"], time.Minute)
	item := func(name string, mtime time.Time, mount string) map[string]any {
		return map[string]any{"locator": locator.New(blocks[name]).String(), "block_mtime": mtime.UnixNano(), "mount_uuid": mount}
	}
	list := []map[string]any{
		item("old", mtimes["old"], ""),
		item("new", mtimes["new"], ""),
		item("changed", mtimes["changed"].Add(-time.Second), ""),
		item("elsewhere", mtimes["elsewhere"], "zzzzz-nyw5e-000000000000009"),
	}
	if code, body := ts.sendJSON(t, "PUT", "/trash", list); code != 200 || !strings.Contains(body, "4") {
		t.Fatalf("PUT /trash: %d %q", code, body)
	}
	st := waitWork(t, ts, "trash", 4)
	if st.Done != 1 || st.Skipped != 3 || st.Failed != 0 {
		t.Errorf("trash list status %+v, want 1 done, 3 skipped", st)
	}
	// An item finished in the status is counted in the metrics already.
	if _, body, _ := ts.do(t, "GET", "/metrics", mgmtToken, nil); !strings.Contains(body, `keepstore_work_items_total{list="trash",outcome="done"} 1`) ||
		!strings.Contains(body, `keepstore_work_items_total{list="trash",outcome="skipped"} 3`) {
		t.Errorf("metrics once the status shows the list done:\n%s", grepLines(body, "work_items"))
	}
	served := func(name string) bool {
		code, _, _ := ts.do(t, "GET", "/"+locator.New(blocks[name]).String(), "", nil)
		return code == 200
	}
	for name := range blocks {
		if served(name) != (name != "old") {
			t.Errorf("%s: served %v after the trash list", name, served(name))
		}
	}
	if _, body, _ := ts.do(t, "GET", "/index", sysToken, nil); strings.Contains(body, hashOf(blocks["old"])) {
		t.Errorf("index lists a trashed block:\n%s", body)
	}
	trashed, _ := filepath.Glob(filepath.Join(dir, hashOf(blocks["old"])[:3], hashOf(blocks["old"])+".trash.*"))
	if len(trashed) != 1 {
		t.Fatalf("trash copies %v, want one HASH.trash.DEADLINE", trashed)
	}
	deadline, _ := strconv.ParseInt(trashed[0][strings.LastIndex(trashed[0], ".")+1:], 10, 64)
	if d := time.Until(time.Unix(deadline, 0)); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("trash deadline in %v, want the 24 h trash lifetime", d)
	}

	// Untrash restores it, served and fresh.
	if code, body, _ := ts.do(t, "PUT", "/untrash/"+locator.New(blocks["old"]).String(), sysToken, nil); code != 200 || !strings.Contains(body, "untrashed") {
		t.Errorf("untrash: %d %q", code, body)
	}
	if !served("old") {
		t.Error("untrashed block not served")
	}
	// Trashed again, the sweep keeps it until its deadline and deletes
	// it after.
	mt := age(t, dir, blocks["old"], 2*time.Hour)
	ts.sendJSON(t, "PUT", "/trash", []map[string]any{item("old", mt, ts.status(t).Volumes[0].ID)})
	waitWork(t, ts, "trash", 5)
	if served("old") {
		t.Fatal("block served after being trashed again")
	}
	if n := ts.srv.EmptyTrash(context.Background(), time.Now().Add(23*time.Hour)); n != 0 {
		t.Errorf("sweep before the deadline deleted %d blocks", n)
	}
	if code, _, _ := ts.do(t, "PUT", "/untrash/"+locator.New(blocks["old"]).String(), sysToken, nil); code != 200 {
		t.Errorf("untrash before the deadline: %d", code)
	}
	mt = age(t, dir, blocks["old"], 2*time.Hour)
	ts.sendJSON(t, "PUT", "/trash", []map[string]any{item("old", mt, "")})
	waitWork(t, ts, "trash", 6)
	if n := ts.srv.EmptyTrash(context.Background(), time.Now().Add(25*time.Hour)); n != 1 {
		t.Errorf("sweep after the deadline deleted %d blocks, want 1", n)
	}
	if code, _, _ := ts.do(t, "PUT", "/untrash/"+locator.New(blocks["old"]).String(), sysToken, nil); code != 404 {
		t.Errorf("untrash after the sweep: %d, want 404", code)
	}
	if _, body, _ := ts.do(t, "GET", "/metrics", mgmtToken, nil); !strings.Contains(body, "keepstore_trash_deleted_total 1") ||
		!strings.Contains(body, `keepstore_work_items_total{list="trash",outcome="skipped"} 3`) {
		t.Errorf("metrics lack the sweep or the skipped items:\n%s", grepLines(body, "trash"))
	}
}

// TestTrashSweepRuns: the sweep runs by itself every
// TrashCheckInterval, and trash lifetime 0 (negative here) deletes at
// once.
func TestTrashSweepRuns(t *testing.T) {
	ts := start(t, keepstore.Config{SystemToken: sysToken, SigningTTL: time.Hour, TrashLifetime: -1, TrashCheckInterval: 10 * time.Millisecond})
	data := []byte("deleted at once")
	ts.put(t, data)
	mt := age(t, ts.dirs[0], data, 2*time.Hour)
	// A leftover temporary file, as a crash leaves: the sweep removes it.
	tmp := filepath.Join(ts.dirs[0], hashOf(data)[:3], "tmp"+hashOf(data)+"-crashed")
	os.WriteFile(tmp, []byte("partial"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(tmp, old, old)
	ts.sendJSON(t, "PUT", "/trash", []map[string]any{{"locator": locator.New(data).String(), "block_mtime": mt.UnixNano()}})
	waitWork(t, ts, "trash", 1)
	if files := ts.files(t); len(files) > 1 || (len(files) == 1 && files[0] != tmp[len(ts.dirs[0])+1:]) {
		t.Errorf("files after trashing with lifetime 0: %v, want the block gone at once", files)
	}
	for deadline := time.Now().Add(time.Minute); len(ts.files(t)) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sweep never removed %v", ts.files(t))
		}
	}
}

// TestDelete: DELETE trashes copies older than the signing TTL, keeps
// newer ones (a signature given out may still be used), and is refused
// with 405 when trash is disabled.
func TestDelete(t *testing.T) {
	ts := start(t, keepstore.Config{SystemToken: sysToken, SigningTTL: time.Hour})
	data := []byte("delete me")
	ts.put(t, data)
	loc := "/" + locator.New(data).String()
	code, body, _ := ts.do(t, "DELETE", loc, sysToken, nil)
	if code != 200 || !strings.Contains(body, `"copies_deleted": 0`) || !strings.Contains(body, `"copies_too_new": 1`) {
		t.Errorf("DELETE of a new block: %d %q, want 200 with 1 too new", code, body)
	}
	if code, _, _ := ts.do(t, "GET", loc, "", nil); code != 200 {
		t.Errorf("block newer than the signing TTL gone after DELETE: %d", code)
	}
	age(t, ts.dirs[0], data, 2*time.Hour)
	code, body, _ = ts.do(t, "DELETE", loc, sysToken, nil)
	if code != 200 || !strings.Contains(body, `"copies_deleted": 1`) {
		t.Errorf("DELETE of an old block: %d %q, want 200 with 1 deleted", code, body)
	}
	if code, _, _ := ts.do(t, "GET", loc, "", nil); code != 404 {
		t.Errorf("GET after DELETE: %d, want 404", code)
	}
	if code, _, _ := ts.do(t, "PUT", "/untrash"+loc, sysToken, nil); code != 200 {
		t.Errorf("untrash after DELETE: %d, want 200", code)
	}

	off := start(t, keepstore.Config{SystemToken: sysToken, DisableTrash: true})
	off.put(t, data)
	age(t, off.dirs[0], data, 30*24*time.Hour)
	if code, body, _ := off.do(t, "DELETE", loc, sysToken, nil); code != 405 {
		t.Errorf("DELETE with trash disabled: %d %q, want 405", code, body)
	}
	if code, body, _ := off.do(t, "GET", "/mounts", sysToken, nil); !strings.Contains(body, `"allow_trash": false`) {
		t.Errorf("mounts with trash disabled: %d %q, want allow_trash false", code, body)
	}
}

// TestPullList: a pull list makes the server fetch blocks from the
// servers named, through their signature check, verifying the hash; a
// source sending wrong data stores nothing.
func TestPullList(t *testing.T) {
	key := []byte("shared blob signing key")
	src := start(t, keepstore.Config{SystemToken: sysToken, SigningKey: key, RequireSignatures: true})
	dst := start(t, keepstore.Config{SystemToken: sysToken, SigningKey: key})
	data := bytes.Repeat([]byte("pull me "), 300000)
	src.put(t, data)
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("lies lie"), 300000))
	}))
	defer liar.Close()
	missing := []byte("nobody has this")
	dstMount := dst.status(t).Volumes[0].ID
	list := []map[string]any{
		{"locator": locator.New(data).String(), "servers": []string{liar.URL, src.URL}, "mount_uuid": dstMount},
		{"locator": locator.New(missing).String(), "servers": []string{src.URL, liar.URL}},
		{"locator": locator.New(data).String(), "servers": []string{src.URL}, "mount_uuid": "zzzzz-nyw5e-000000000000009"},
	}
	if code, body := dst.sendJSON(t, "PUT", "/pull", list); code != 200 {
		t.Fatalf("PUT /pull: %d %q", code, body)
	}
	st := waitWork(t, dst, "pull", 3)
	if st.Done != 1 || st.Failed != 1 || st.Skipped != 1 || !strings.Contains(st.LastError, hashOf(missing)) {
		t.Errorf("pull status %+v, want 1 done, 1 failed (naming %s), 1 skipped", st, hashOf(missing))
	}
	if code, body, _ := dst.do(t, "GET", "/"+locator.New(data).String(), "", nil); code != 200 || body != string(data) {
		t.Errorf("pulled block: %d, %d bytes", code, len(body))
	}
	for _, f := range dst.files(t) {
		if strings.Contains(f, hashOf(missing)) || strings.HasPrefix(filepath.Base(f), "tmp") {
			t.Errorf("file left by a failed pull: %s", f)
		}
	}
}

// TestVolumeLockAndUUID: two servers never serve one volume directory
// at once, and a volume keeps its UUID across restarts and moves.
func TestVolumeLockAndUUID(t *testing.T) {
	dir := t.TempDir()
	first, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: dir}}})
	if err != nil {
		t.Fatal(err)
	}
	uuid := first.Status(context.Background()).Volumes[0].ID
	_, err = keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: dir}}})
	if !errors.Is(err, dirvolume.ErrVolumeInUse) || !strings.Contains(err.Error(), "in use by another server (process "+strconv.Itoa(os.Getpid())+")") {
		t.Errorf("second server on one volume: %v, want ErrVolumeInUse naming this process", err)
	}
	// Read-only, a volume may be shared.
	ro, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: dir, ReadOnly: true}}})
	if err != nil {
		t.Errorf("read-only server beside a writer: %v", err)
	} else {
		if got := ro.Status(context.Background()).Volumes[0].ID; got != uuid {
			t.Errorf("read-only view of the volume has uuid %s, want %s", got, uuid)
		}
		ro.Close()
	}
	first.Close()
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	again, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: moved}}})
	if err != nil {
		t.Fatalf("reopening after Close and a move: %v", err)
	}
	defer again.Close()
	if got := again.Status(context.Background()).Volumes[0].ID; got != uuid {
		t.Errorf("uuid after a restart and a move = %s, want %s", got, uuid)
	}
}
