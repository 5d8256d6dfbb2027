package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/manifest"
)

// keep check against real servers: every block held twice is fine; a
// copy removed from a disk makes it exit non-zero naming the block.
func TestE2ECheck(t *testing.T) {
	env := proctest.Env(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("system-secret\n"), 0o600)
	var svcs []keepclient.Service
	var dirs []string
	for i := 0; i < 3; i++ {
		dir := t.TempDir()
		svc, _ := startServer(t, env, i, "--volume", dir, "--system-token-file", tokenFile)
		svcs = append(svcs, svc)
		dirs = append(dirs, dir)
	}
	data, _ := keepclient.MarshalServices(svcs)
	svcFile := filepath.Join(t.TempDir(), "services.json")
	os.WriteFile(svcFile, data, 0o644)
	src, _ := randomFile(t, 3<<20)
	text, stderr, err := proctest.Run(t, env, nil, "put", "--services", svcFile, "--replicas", "2", src)
	if err != nil {
		t.Fatalf("put: %v\n%s", err, stderr)
	}
	mf := writeManifest(t, text)
	out, stderr, err := proctest.Run(t, env, nil, "check", "--services", svcFile, "--system-token-file", tokenFile, mf)
	if err != nil || !strings.Contains(out, "ok:                      1 blocks") {
		t.Fatalf("check: %v\n%s\n%s", err, out, stderr)
	}
	// Without the system token the indexes cannot be read.
	if _, _, err := proctest.Run(t, append(env, "KEEP_TOKEN=user"), nil, "check", "--services", svcFile, mf); err == nil {
		t.Error("check without the system token succeeded")
	}
	m, _ := manifest.Parse(text)
	h := m.Blocks()[0].Hash
	removed := false
	for _, d := range dirs {
		if os.Remove(filepath.Join(d, h[:3], h)) == nil {
			removed = true
			break
		}
	}
	if !removed {
		t.Fatal("block file not found on any server")
	}
	out, _, err = proctest.Run(t, env, nil, "check", "--services", svcFile, "--system-token-file", tokenFile, mf)
	if exitCode(err) != 1 || !strings.Contains(out, "under-replicated") || !strings.Contains(out, h) {
		t.Errorf("check after a copy was lost: %v\n%s", err, out)
	}
}
