package keepstore_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/version"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/dirvolume"
)

func TestIndex(t *testing.T) {
	ts := start(t, keepstore.Config{Volumes: dirVolumes(t, 2), SystemToken: "sys"})
	if code, body, _ := ts.do(t, "GET", "/index", "sys", nil); code != 200 || body != "\n" {
		t.Errorf("empty index = %d %q", code, body)
	}
	var hashes []string
	for i := range 10 {
		data := []byte(fmt.Sprint("index block ", i))
		ts.put(t, data)
		hashes = append(hashes, hashOf(data))
	}
	// A copy on both volumes is listed once.
	h0 := hashes[0]
	for _, d := range ts.dirs {
		os.MkdirAll(filepath.Join(d, h0[:3]), 0o755)
		os.WriteFile(filepath.Join(d, h0[:3], h0), []byte("index block 0"), 0o644)
	}
	slices.Sort(hashes)
	line := regexp.MustCompile(`^([0-9a-f]{32})\+13 [0-9]{19}$`)
	for _, path := range []string{"/index", "/index/", "/index/" + hashes[3][:1], "/index/" + hashes[3][:4], "/index?prefix=" + hashes[3][:2]} {
		code, body, _ := ts.do(t, "GET", path, "sys", nil)
		prefix := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(path, "/index"), "?prefix="), "/")
		var want []string
		for _, h := range hashes {
			if strings.HasPrefix(h, prefix) {
				want = append(want, h)
			}
		}
		if code != 200 || !strings.HasSuffix(body, "\n\n") && len(want) > 0 {
			t.Errorf("GET %s = %d %q", path, code, body)
			continue
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n") {
			m := line.FindStringSubmatch(l)
			if m == nil {
				if l != "" {
					t.Errorf("GET %s: bad line %q", path, l)
				}
				continue
			}
			got = append(got, m[1])
		}
		if !slices.Equal(got, want) {
			t.Errorf("GET %s listed %v, want %v", path, got, want)
		}
	}
	for _, c := range []struct {
		path, tok string
		code      int
	}{
		{"/index", "", 401},
		{"/index", "wrong", 403},
		{"/index/XYZ", "sys", 400},
		{"/index/" + strings.Repeat("0", 33), "sys", 400},
	} {
		if code, _, _ := ts.do(t, "GET", c.path, c.tok, nil); code != c.code {
			t.Errorf("GET %s token %q = %d, want %d", c.path, c.tok, code, c.code)
		}
	}
	// Without a system token nobody may list blocks.
	ts = start(t, keepstore.Config{})
	if code, _, _ := ts.do(t, "GET", "/index", "", nil); code != 403 {
		t.Errorf("index with no system token configured = %d, want 403", code)
	}
}

func TestManagementEndpoints(t *testing.T) {
	vols := dirVolumes(t, 2)
	vols[1].ReadOnly = true
	vols[1].Classes = []string{"cold", "archive"}
	vols[1].Replication = 2
	vols[1].ID = "zzzzz-nyw5e-000000000000001"
	ts := start(t, keepstore.Config{Volumes: vols})
	ts.put(t, []byte("foo"))

	code, body, h := ts.do(t, "GET", "/_health/ping", mgmtToken, nil)
	if code != 200 || strings.TrimSpace(body) != `{
  "health": "OK",
  "version": "`+version.String()+`"
}` || h.Get("Content-Type") != "application/json" {
		t.Errorf("health = %d %q", code, body)
	}

	code, body, _ = ts.do(t, "GET", "/_status", mgmtToken, nil)
	var st keepstore.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || len(st.Volumes) != 2 {
		t.Fatalf("status = %d %q (%v)", code, body, err)
	}
	v0, v1 := st.Volumes[0], st.Volumes[1]
	if v0.Scan == nil || v0.Scan.State != "done" || v0.Counting || !strings.Contains(body, `"scan": {`) {
		t.Errorf("status of an empty Directory volume: scan %+v, counting %v; want its scan done", v0.Scan, v0.Counting)
	}
	if v0.Path != vols[0].Path || v0.ReadOnly || v0.UsedBytes != 3 || v0.Blocks != 1 || !slices.Equal(v0.Classes, []string{"default"}) || v0.Replication != 1 || v0.FreeBytes <= 0 {
		t.Errorf("status of volume 0 = %+v", v0)
	}
	if v1.ID != "zzzzz-nyw5e-000000000000001" || !v1.ReadOnly || !slices.Equal(v1.Classes, []string{"archive", "cold"}) || v1.Replication != 2 || v1.Blocks != 0 {
		t.Errorf("status of volume 1 = %+v", v1)
	}
	if !strings.Contains(body, `"used_bytes": 3`) || !strings.Contains(body, `"read_only": true`) {
		t.Errorf("status JSON field names: %s", body)
	}

	code, body, _ = ts.do(t, "GET", "/metrics", mgmtToken, nil)
	for _, want := range []string{
		`keepstore_requests_total{code="200",method="PUT"} 1`,
		`keepstore_bytes_in_total 3`,
		`keepstore_bytes_out_total `,
		`keepstore_volume_capacity_bytes{`,
		`keepstore_volume_free_bytes{`,
		`keepstore_volume_blocks{path="` + vols[0].Path + `",volume="` + v0.ID + `"} 1`,
		`keepstore_volume_used_bytes{path="` + vols[0].Path + `",volume="` + v0.ID + `"} 3`,
		`keepstore_requests_in_flight 1`,
		`keepstore_request_duration_seconds_bucket`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics lack %s:\n%s", want, body)
		}
	}

	// The PUT's locator, at least, has gone out.
	if m := regexp.MustCompile(`(?m)^keepstore_bytes_out_total (\S+)$`).FindStringSubmatch(body); m == nil || m[1] == "0" {
		t.Errorf("keepstore_bytes_out_total = %v, want > 0", m)
	}

	req, _ := http.NewRequest("OPTIONS", ts.URL+"/"+hashOf([]byte("foo")), nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":   "*",
		"Access-Control-Allow-Methods":  "GET, HEAD, PUT, OPTIONS",
		"Access-Control-Allow-Headers":  "Authorization, Content-Length, Content-Type, X-Keep-Desired-Replicas, X-Keep-Signature, X-Keep-Storage-Classes",
		"Access-Control-Expose-Headers": "X-Keep-Locator, X-Keep-Replicas-Stored, X-Keep-Storage-Classes-Confirmed, X-Keep-Volumes-Stored",
		"Access-Control-Max-Age":        "86486400",
	} {
		if resp.StatusCode != 200 || resp.Header.Get(k) != v {
			t.Errorf("OPTIONS: %d, %s = %q, want %q", resp.StatusCode, k, resp.Header.Get(k), v)
		}
	}
}

func TestRequestID(t *testing.T) {
	ts := start(t, keepstore.Config{})
	_, _, h := ts.do(t, "GET", "/_health/ping", mgmtToken, nil, "X-Request-Id", "my-id-123")
	if got := h.Get("X-Request-Id"); got != "my-id-123" {
		t.Errorf("echoed request id = %q", got)
	}
	for _, path := range []string{"/_health/ping", "/nonsense", "/" + hashOf(nil)} {
		_, _, h := ts.do(t, "GET", path, "", nil)
		if got := h.Get("X-Request-Id"); !regexp.MustCompile(`^req-[0-9a-z]{20}$`).MatchString(got) {
			t.Errorf("GET %s: generated request id %q", path, got)
		}
		ts.waitLog(t, "request_id="+h.Get("X-Request-Id"))
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	for name, cfg := range map[string]keepstore.Config{
		"no volumes":        {},
		"signatures no key": {Volumes: []keepstore.VolumeConfig{{Path: dir}}, RequireSignatures: true},
		"missing directory": {Volumes: []keepstore.VolumeConfig{{Path: filepath.Join(dir, "nope")}}},
		"duplicate volume":  {Volumes: []keepstore.VolumeConfig{{Path: dir}, {Path: dir}}},
		"negative limit":    {Volumes: []keepstore.VolumeConfig{{Path: dir}}, MaxConcurrentRequests: -1},
		"negative capacity": {Volumes: []keepstore.VolumeConfig{{Path: dir, Capacity: -1}}},
		"volume without id": {Volumes: []keepstore.VolumeConfig{{Volume: struct{ keepstore.Volume }{mustDir(t, t.TempDir())}}}},
	} {
		_, err := keepstore.New(cfg)
		switch {
		case err == nil:
			t.Errorf("%s: New succeeded", name)
		case strings.Contains(err.Error(), "keepstore."):
			t.Errorf("%s: error %q names Go code", name, err)
		}
	}
}

func mustDir(t *testing.T, dir string) *dirvolume.Directory {
	d, err := dirvolume.Open(dir, dirvolume.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// A single volume's listing is passed on as it comes: a failure before
// any line is a 500; after some, the listing ends without the blank
// line that marks it complete.
func TestIndexOneVolumeFails(t *testing.T) {
	for _, tt := range []struct {
		after, code, lines int
		complete           bool
	}{
		{-1, 200, 3, true},
		{0, 500, 0, false},
		{2, 200, 2, false},
	} {
		t.Run(fmt.Sprint(tt.after), func(t *testing.T) {
			ts := start(t, keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: fmt.Sprintf("mem://one?index-fails-after=%d", tt.after)}}, SystemToken: "sys"})
			for i := range 3 {
				ts.put(t, []byte(fmt.Sprint("one volume block ", i)))
			}
			code, body, _ := ts.do(t, "GET", "/index", "sys", nil)
			lines := strings.Count(body, "+18 ") // one a block: "hash+18 mtime"
			if code != tt.code || tt.code == 200 && (lines != tt.lines || strings.HasSuffix(body, "\n\n") != tt.complete) {
				t.Errorf("GET /index = %d %q, want %d with %d lines, complete %v", code, body, tt.code, tt.lines, tt.complete)
			}
		})
	}
}
