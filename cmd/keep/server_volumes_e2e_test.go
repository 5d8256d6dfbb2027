package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepstore"
)

// keep server with a volume missing, and volume uuids across flags and
// --config, through the real binary.

// srvTokenFiles writes the system and management tokens of the config
// tests to files, for servers started with flags.
func srvTokenFiles(t *testing.T) (sysFile, mgmtFile string) {
	t.Helper()
	dir := t.TempDir()
	sysFile, mgmtFile = filepath.Join(dir, "system-token"), filepath.Join(dir, "management-token")
	for f, tok := range map[string]string{sysFile: cfgSystemToken, mgmtFile: cfgMgmtToken} {
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return sysFile, mgmtFile
}

// srvHealth is a /_health/ping answer.
type srvHealth struct {
	Health, Error, Version string
}

// srvPing reads p's /_health/ping.
func srvPing(t *testing.T, p *keepProcess) srvHealth {
	t.Helper()
	var h srvHealth
	if err := getJSON(p.base+"/_health/ping", cfgMgmtToken, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// srvMounts reads the uuids in base's /mounts, and its missing-volumes
// header.
func srvMounts(t *testing.T, base string) ([]string, string) {
	t.Helper()
	code, body, hdr := cfgDo(t, cfgClient(t, nil), "GET", base+"/mounts", cfgSystemToken, nil)
	var ms []struct{ UUID string }
	if err := json.Unmarshal([]byte(body), &ms); code != 200 || err != nil {
		t.Fatalf("GET /mounts = %d %q (%v)", code, body, err)
	}
	var uuids []string
	for _, m := range ms {
		uuids = append(uuids, m.UUID)
	}
	return uuids, hdr.Get(keepstore.HeaderVolumesMissing)
}

// TestE2EServerMissingVolume: a server whose second disk is not mounted
// starts on the first, serves it, and reports the missing one (log line,
// /_status, /_health/ping, /metrics, and /mounts leaving it out); once
// the disk is back, a restart brings it in. The start-up line and the
// health answer carry the build's version.
func TestE2EServerMissingVolume(t *testing.T) {
	sysFile, mgmtFile := srvTokenFiles(t)
	present := t.TempDir()
	gone := filepath.Join(t.TempDir(), "disk1", "keep") // its disk not mounted
	args := []string{"server", "--listen", "127.0.0.1:0", "--volume", present, "--volume", gone,
		"--system-token-file", sysFile, "--management-token-file", mgmtFile}
	p := startCfgProcess(t, "http", args...)
	client := cfgClient(t, nil)

	proctest.WaitLine(t, p, `level=ERROR msg="volume missing: serving the other volumes without it; restart the server once it is back" path=`+
		regexp.QuoteMeta(gone)+` error="volume `+regexp.QuoteMeta(gone)+`: no such directory`)
	version := proctest.WaitLine(t, p, `msg="keep server listening" .*volumes=1 read_only_volumes=0 missing_volumes=1 .* version="([^"]+)"`)[1]
	if !strings.Contains(p.Log().String(), `msg="keep server starting" version="`+version+`"`) {
		t.Errorf("no start-up line with the version %q:\n%s", version, p.Log())
	}

	loc := cfgPut(t, client, p.base, []byte("stored while a disk is missing"))
	if !cfgOn(present, loc.Hash) {
		t.Errorf("block not on the volume present")
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("the missing volume's directory was made: %v", err)
	}

	var st keepstore.Status
	if err := getJSON(p.base+"/_status", cfgMgmtToken, &st); err != nil {
		t.Fatal(err)
	}
	if n := len(st.Volumes); n != 2 || st.Volumes[0].Missing || !st.Volumes[1].Missing || st.Volumes[1].Path != gone || !strings.Contains(st.Volumes[1].Error, "no such directory") {
		t.Errorf("/_status volumes = %+v, want %s missing with its error", st.Volumes, gone)
	}
	if h := srvPing(t, p); h.Health != "ERROR" || !strings.Contains(h.Error, "1 of 2 volumes missing") || !strings.Contains(h.Error, gone) || h.Version != version {
		t.Errorf("/_health/ping = %+v, want ERROR naming %s, version %q", h, gone, version)
	}
	if _, body, _ := cfgDo(t, client, "GET", p.base+"/metrics", cfgMgmtToken, nil); !strings.Contains(body, "\nkeepstore_volumes_missing 1\n") {
		t.Errorf("/metrics lacks keepstore_volumes_missing 1")
	}
	uuids, missing := srvMounts(t, p.base)
	if len(uuids) != 1 || uuids[0] != st.Volumes[0].ID || missing != "1" {
		t.Errorf("/mounts = %v, %s %q; want only %s, and 1 missing", uuids, keepstore.HeaderVolumesMissing, missing, st.Volumes[0].ID)
	}

	// The disk is back: a restart serves both.
	if err := os.MkdirAll(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	p.Kill()
	p = startCfgProcess(t, "http", args...)
	proctest.WaitLine(t, p, `msg="keep server listening" .*volumes=2 read_only_volumes=0 missing_volumes=0 `)
	if h := srvPing(t, p); h.Health != "OK" || h.Error != "" || h.Version != version {
		t.Errorf("/_health/ping with every volume = %+v, want OK, version %q", h, version)
	}
	if uuids, missing := srvMounts(t, p.base); len(uuids) != 2 || missing != "" {
		t.Errorf("/mounts = %v, %s %q; want both volumes", uuids, keepstore.HeaderVolumesMissing, missing)
	}
	if code, body, _ := cfgDo(t, client, "GET", p.base+"/"+loc.String(), cfgUserToken, nil); code != 200 || body != "stored while a disk is missing" {
		t.Errorf("GET after the restart = %d %q", code, body)
	}
}

// TestE2EServerMissingBucket: an S3 volume whose endpoint does not
// answer is a missing volume too; the server starts on its directory.
func TestE2EServerMissingBucket(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close() // nothing answers there now
	creds := filepath.Join(t.TempDir(), "s3-credentials")
	if err := os.WriteFile(creds, []byte("key\nsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bucket := "s3://gone/keep?endpoint=" + endpoint + "&region=us-east-1&credentials_file=" + creds
	_, mgmtFile := srvTokenFiles(t)
	p := startCfgProcess(t, "http", "server", "--listen", "127.0.0.1:0", "--volume", t.TempDir(), "--volume", bucket, "--management-token-file", mgmtFile)
	proctest.WaitLine(t, p, `msg="volume missing: .*S3 volume .*reaching the bucket`)
	var st keepstore.Status
	if err := getJSON(p.base+"/_status", cfgMgmtToken, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Volumes) != 2 || !st.Volumes[1].Missing || !strings.Contains(st.Volumes[1].Path, "gone") {
		t.Errorf("/_status volumes = %+v, want the bucket missing", st.Volumes)
	}
	if h := srvPing(t, p); h.Health != "ERROR" {
		t.Errorf("/_health/ping = %+v, want ERROR", h)
	}
}

// TestE2EServerVolumeRefusals: a server still refuses to start when no
// volume opens, and when a volume is wrong rather than missing.
func TestE2EServerVolumeRefusals(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gone1, gone2 := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	env := proctest.Env(t)
	for _, tt := range []struct {
		name string
		args []string
		want []string
	}{
		{"every volume missing", []string{"--volume", gone1, "--volume", gone2}, []string{"no volume could be opened", gone1, gone2}},
		{"a file for a volume", []string{"--volume", t.TempDir(), "--volume", file}, []string{file, "not a directory"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := proctest.Run(t, env, nil, append([]string{"server", "--listen", "127.0.0.1:0"}, tt.args...)...)
			if err == nil {
				t.Fatal("keep server started")
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestE2EServerVolumeUUIDAcrossConfig: a volume keeps its uuid when its
// server moves from flags to --config and back. A volume first served
// with flags, then named afresh in a config, is refused with both uuids
// named, and served once the config names the one it keeps; a volume
// first served with --config keeps the config's uuid when served with
// flags.
func TestE2EServerVolumeUUIDAcrossConfig(t *testing.T) {
	const configured = "e2e00-nyw5e-000000000000000" // the config's uuid for dirs[0]
	sysFile, _ := srvTokenFiles(t)
	env := proctest.Env(t)

	t.Run("flags then config", func(t *testing.T) {
		c := newCfgCluster(t)
		p := startCfgProcess(t, "http", "server", "--listen", "127.0.0.1:0", "--volume", c.dirs[0], "--system-token-file", sysFile)
		uuids, _ := srvMounts(t, p.base)
		if len(uuids) != 1 || uuids[0] == configured {
			t.Fatalf("/mounts with flags = %v", uuids)
		}
		kept := uuids[0]
		p.Kill()

		_, stderr, err := proctest.Run(t, env, nil, "server", "--config", c.write(t), "--listen", "127.0.0.1:0")
		if err == nil || strings.Count(stderr, kept) < 2 || !strings.Contains(stderr, configured) || !strings.Contains(stderr, c.dirs[0]) {
			t.Errorf("--config naming %s a volume that keeps %s: %v\n%s", configured, kept, err, stderr)
		}

		p = startCfgProcess(t, "http", "server", "--config", c.write(t, configured, kept))
		if uuids, _ := srvMounts(t, p.base); len(uuids) != 1 || uuids[0] != kept {
			t.Errorf("/mounts with --config naming %s = %v", kept, uuids)
		}
	})

	t.Run("config then flags", func(t *testing.T) {
		c := newCfgCluster(t)
		p := startCfgProcess(t, "http", "server", "--config", c.write(t))
		if uuids, _ := srvMounts(t, p.base); len(uuids) != 1 || uuids[0] != configured {
			t.Fatalf("/mounts with --config = %v, want %s", uuids, configured)
		}
		p.Kill()
		p = startCfgProcess(t, "http", "server", "--listen", "127.0.0.1:0", "--volume", c.dirs[0], "--system-token-file", sysFile)
		if uuids, _ := srvMounts(t, p.base); len(uuids) != 1 || uuids[0] != configured {
			t.Errorf("/mounts with flags after --config = %v, want %s", uuids, configured)
		}
	})
}
