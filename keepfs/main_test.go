package keepfs

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/internal/fusetest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// randomBytes returns n bytes from a generator seeded with seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// packFiles packs files (path -> content) into blocks of blockSize
// bytes, stores each block on the first copies servers of its probe
// order, and returns the manifest.
func packFiles(t testing.TB, c *keeptest.Cluster, files map[string][]byte, dirs []string, blockSize, copies int) *manifest.Manifest {
	t.Helper()
	return keeptest.PackFiles(t, files, dirs, blockSize, func(data []byte) (locator.Locator, error) {
		l := locator.New(data)
		for _, s := range c.ProbeOrder(l.Hash)[:copies] {
			s.Store(data)
		}
		return l, nil
	})
}

// newClient returns a client of c's servers.
func newClient(t testing.TB, c *keeptest.Cluster, stall bool) *keepclient.Client {
	t.Helper()
	opts := keepclient.Options{Services: c.Services(), Token: "test", MaxPasses: 1}
	if stall {
		opts.StallTimeout = 200e6 // a stalled server is left quickly
	}
	kc, err := keepclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

// mountTree mounts t at a new directory, unmounted when the test ends
// (even if it fails), and returns the mount and the directory.
func mountTree(t *testing.T, tree *Tree, opts Options) (*Mount, string) {
	t.Helper()
	fusetest.Need(t)
	dir := t.TempDir()
	m, err := New(dir, tree, opts)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if mounted(t, dir) {
			t.Errorf("%s is still mounted", dir)
		}
		<-m.Done() // the kernel has closed the connection: no goroutine is left

	})
	return m, dir
}

// mounted reports whether dir is a mount point in /proc/self/mountinfo.
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// md5hex is the MD5 of b in hex.
func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// checkFiles compares every file under dir with files, and that there
// is nothing else but dirs.
func checkFiles(t *testing.T, dir string, files map[string][]byte, dirs []string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return nil
		}
		seen[rel] = true
		want, ok := files[rel]
		if !ok {
			return fmt.Errorf("unexpected file %s", rel)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s: %d bytes, md5 %s; want %d bytes, md5 %s", rel, len(got), md5hex(got), len(want), md5hex(want))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range files {
		if !seen[p] {
			t.Errorf("file %s missing", p)
		}
	}
	for _, d := range dirs {
		if info, err := os.Stat(filepath.Join(dir, d)); err != nil || !info.IsDir() {
			t.Errorf("directory %s: %v", d, err)
		}
	}
}
