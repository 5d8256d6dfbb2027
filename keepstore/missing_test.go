package keepstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/version"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/dirvolume"
	"github.com/keepproject/keep/locator"
)

// TestMissingVolume: a server whose volume's disk is not there starts on
// the others, serves them, and reports the missing one in its log,
// /_status, /_health/ping and /metrics; /mounts leaves it out and says
// so in a header; /mounts/UUID/blocks of it answers 503.
func TestMissingVolume(t *testing.T) {
	present := t.TempDir()
	gone := filepath.Join(t.TempDir(), "unmounted", "keep")
	const goneID = "zzzzz-nyw5e-000000000000009"
	ts := start(t, keepstore.Config{SystemToken: sysToken, Volumes: []keepstore.VolumeConfig{
		{Path: present}, {Path: gone, ID: goneID},
	}})
	if log := ts.log.String(); !strings.Contains(log, "volume missing") || !strings.Contains(log, gone) || !strings.Contains(log, "no such directory") {
		t.Errorf("log does not name the missing volume and why:\n%s", log)
	}

	data := []byte("stored beside a missing volume")
	ts.put(t, data)
	if _, err := os.Stat(filepath.Join(present, hashOf(data)[:3], hashOf(data))); err != nil {
		t.Errorf("block not on the volume present: %v", err)
	}
	if code, body, _ := ts.do(t, "GET", "/"+locator.New(data).String(), token, nil); code != 200 || body != string(data) {
		t.Errorf("GET = %d %q", code, body)
	}
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing volume's directory was created: %v", err)
	}

	st := ts.status(t)
	if len(st.Volumes) != 2 || st.Volumes[0].Missing || !st.Volumes[1].Missing ||
		st.Volumes[1].ID != goneID || st.Volumes[1].Path != gone || !strings.Contains(st.Volumes[1].Error, "no such directory") {
		t.Errorf("/_status volumes = %+v, want the present one, then %s missing with its error", st.Volumes, gone)
	}

	code, body, _ := ts.do(t, "GET", "/_health/ping", mgmtToken, nil)
	var h struct{ Health, Error, Version string }
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || h.Health != "ERROR" ||
		!strings.Contains(h.Error, "1 of 2 volumes missing") || !strings.Contains(h.Error, gone) || h.Version != version.String() {
		t.Errorf("/_health/ping = %d %s (%v), want ERROR naming %s, and the version", code, body, err, gone)
	}

	_, metrics, _ := ts.do(t, "GET", "/metrics", mgmtToken, nil)
	if !strings.Contains(metrics, "\nkeepstore_volumes_missing 1\n") {
		t.Errorf("metrics lack keepstore_volumes_missing 1:\n%s", metrics)
	}

	code, body, hdr := ts.do(t, "GET", "/mounts", sysToken, nil)
	var mounts []struct{ UUID string }
	if err := json.Unmarshal([]byte(body), &mounts); err != nil || code != 200 || len(mounts) != 1 || mounts[0].UUID != st.Volumes[0].ID {
		t.Errorf("/mounts = %d %s (%v), want the present volume alone", code, body, err)
	}
	if got := hdr.Get(keepstore.HeaderVolumesMissing); got != "1" {
		t.Errorf("/mounts %s = %q, want 1", keepstore.HeaderVolumesMissing, got)
	}
	if code, body, _ := ts.do(t, "GET", "/mounts/"+goneID+"/blocks", sysToken, nil); code != 503 || !strings.Contains(body, "missing") {
		t.Errorf("index of the missing mount = %d %q, want 503 saying it is missing", code, body)
	}
	if code, body, _ := ts.do(t, "GET", "/index", sysToken, nil); code != 200 || !strings.HasPrefix(body, hashOf(data)) {
		t.Errorf("/index = %d %q", code, body)
	}
}

// TestHealthVersion: with every volume present, /_health/ping answers
// OK, with the build's version, and /mounts has no missing header.
func TestHealthVersion(t *testing.T) {
	ts := start(t, keepstore.Config{SystemToken: sysToken})
	code, body, _ := ts.do(t, "GET", "/_health/ping", mgmtToken, nil)
	var h map[string]string
	if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || h["health"] != "OK" || h["version"] != version.String() || h["version"] == "" || len(h) != 2 {
		t.Errorf("/_health/ping = %d %s (%v), want health OK and version %q", code, body, err, version.String())
	}
	if _, _, hdr := ts.do(t, "GET", "/mounts", sysToken, nil); hdr.Get(keepstore.HeaderVolumesMissing) != "" {
		t.Errorf("/mounts has %s with every volume present", keepstore.HeaderVolumesMissing)
	}
	_, metrics, _ := ts.do(t, "GET", "/metrics", mgmtToken, nil)
	if !strings.Contains(metrics, "\nkeepstore_volumes_missing 0\n") {
		t.Errorf("metrics lack keepstore_volumes_missing 0")
	}
}

// TestMissingVolumeRefusals: a server still refuses to start when no
// volume opens, and when a volume is wrong rather than missing (a file,
// not a directory; an error not wrapping ErrVolumeMissing).
func TestMissingVolumeRefusals(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gone1, gone2 := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	tests := []struct {
		name    string
		volumes []keepstore.VolumeConfig
		want    []string
	}{
		{"all missing", []keepstore.VolumeConfig{{Path: gone1}, {Path: gone2}}, []string{"no volume could be opened", gone1, gone2}},
		{"a file", []keepstore.VolumeConfig{{Path: t.TempDir()}, {Path: file}}, []string{file, "not a directory"}},
		{"opened outside, missing", []keepstore.VolumeConfig{{Path: "s3://b", Missing: fmt.Errorf("%w: bucket down", keepstore.ErrVolumeMissing)}}, []string{"no volume could be opened", "bucket down"}},
		{"opened outside, failing", []keepstore.VolumeConfig{{Path: t.TempDir()}, {Path: "s3://b", Missing: errors.New("access denied")}}, []string{"access denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := keepstore.New(keepstore.Config{Volumes: tt.volumes})
			if err == nil {
				srv.Close()
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New: %v; want it to say %q", err, w)
				}
			}
		})
	}
	// The volumes a failed New opened are released: a server can open
	// them afterwards.
	dir := t.TempDir()
	if _, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: dir}, {Path: file}}}); err == nil {
		t.Fatal("New with a file as a volume succeeded")
	}
	srv, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: dir}}})
	if err != nil {
		t.Fatalf("volume still locked after a failed New: %v", err)
	}
	srv.Close()
}

// TestVolumeUUIDConfigured: a Directory configured with a UUID keeps it
// in the volume, so that a server given no UUID (flags) serves it under
// the same one; a volume keeping another UUID is refused with both named;
// a read-only volume keeping none takes the configured one and writes
// nothing.
func TestVolumeUUIDConfigured(t *testing.T) {
	const configured = "zzzzz-nyw5e-0000000000000c1"
	uuidOf := func(t *testing.T, vc keepstore.VolumeConfig) (string, error) {
		t.Helper()
		srv, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{vc}})
		if err != nil {
			return "", err
		}
		defer srv.Close()
		return srv.Status(context.Background()).Volumes[0].ID, nil
	}

	t.Run("config then flags", func(t *testing.T) {
		dir := t.TempDir()
		if id, err := uuidOf(t, keepstore.VolumeConfig{Path: dir, ID: configured}); err != nil || id != configured {
			t.Fatalf("with the configured uuid: %s, %v", id, err)
		}
		if id, err := uuidOf(t, keepstore.VolumeConfig{Path: dir}); err != nil || id != configured {
			t.Errorf("without a configured uuid afterwards: %s, %v; want %s", id, err, configured)
		}
	})
	t.Run("flags then config", func(t *testing.T) {
		dir := t.TempDir()
		kept, err := uuidOf(t, keepstore.VolumeConfig{Path: dir})
		if err != nil {
			t.Fatal(err)
		}
		_, err = uuidOf(t, keepstore.VolumeConfig{Path: dir, ID: configured})
		var mismatch *keepstore.UUIDMismatchError
		if !errors.As(err, &mismatch) || mismatch.Kept != kept || mismatch.Configured != configured ||
			strings.Count(err.Error(), kept) < 2 || !strings.Contains(err.Error(), configured) || !strings.Contains(err.Error(), dir) {
			t.Errorf("a volume keeping %s configured as %s: %v; want a UUIDMismatchError naming both", kept, configured, err)
		}
		if id, err := uuidOf(t, keepstore.VolumeConfig{Path: dir, ID: kept}); err != nil || id != kept {
			t.Errorf("configured with the uuid it keeps: %s, %v", id, err)
		}
		if id, err := uuidOf(t, keepstore.VolumeConfig{Path: dir, ReadOnly: true, ID: configured}); err == nil {
			t.Errorf("read-only, configured as %s, keeping %s: served as %s", configured, kept, id)
		}
	})
	t.Run("read-only keeping none", func(t *testing.T) {
		dir := t.TempDir()
		if id, err := uuidOf(t, keepstore.VolumeConfig{Path: dir, ReadOnly: true, ID: configured}); err != nil || id != configured {
			t.Errorf("read-only with the configured uuid: %s, %v", id, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("read-only volume written to: %v", ents)
		}
	})
	t.Run("not a volume uuid", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := dirvolume.Open(dir, dirvolume.Options{UUID: "vol1"}); err == nil || !strings.Contains(err.Error(), `"vol1"`) {
			t.Errorf("Open with uuid vol1: %v", err)
		}
		// Through New, an ID of another form only names the volume.
		if id, err := uuidOf(t, keepstore.VolumeConfig{Path: dir, ID: "vol1"}); err != nil || id != "vol1" {
			t.Errorf("ID vol1: %s, %v", id, err)
		}
	})
}
