package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
)

// inCluster runs keep commands against an in-process cluster of n
// servers, named in a services file.
type inCluster struct {
	*keeptest.Cluster
	env      []string
	services string
}

func newInCluster(t *testing.T, n int) *inCluster {
	t.Helper()
	c := keeptest.NewCluster(t, n)
	data, err := keepclient.MarshalServices(c.Services())
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "services.json")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return &inCluster{Cluster: c, env: append(proctest.Env(t), "KEEP_TOKEN=tok"), services: f}
}

// keep runs the command args[0] with --services and the rest of args.
func (c *inCluster) keep(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return proctest.Run(t, c.env, nil, append([]string{args[0], "--services", c.services}, args[1:]...)...)
}

func writeManifest(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "manifest.txt")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A tree like /usr/share/doc, with links to directories and files, a
// dangling link, a link loop and a FIFO: put follows links, skips the
// rest with a warning naming each, and never loops.
func TestE2EPutLinks(t *testing.T) {
	c := newInCluster(t, 2)
	root := filepath.Join(t.TempDir(), "doc")
	other := filepath.Join(t.TempDir(), "pkg")
	for _, d := range []string{root, other} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(root, "README"), []byte("readme"), 0o644)
	os.WriteFile(filepath.Join(other, "changelog"), []byte("changes"), 0o644)
	os.Symlink(other, filepath.Join(root, "pkg"))
	os.Symlink("README", filepath.Join(root, "README.link"))
	os.Symlink("missing", filepath.Join(root, "dangling"))
	os.Symlink(".", filepath.Join(root, "loop"))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Skip(err)
	}
	text, stderr, err := c.keep(t, "put", "--replicas", "1", root)
	if err != nil {
		t.Fatalf("keep put: %v\n%s", err, stderr)
	}
	for _, want := range []string{"changelog", "README.link"} {
		if !strings.Contains(text, want) {
			t.Errorf("manifest lacks %s:\n%s", want, text)
		}
	}
	if !strings.Contains(text, "./doc/pkg ") {
		t.Errorf("linked directory not stored under its link's name:\n%s", text)
	}
	for _, skipped := range []string{"dangling", "loop", "fifo"} {
		if !strings.Contains(stderr, filepath.Join(root, skipped)+":") {
			t.Errorf("no warning naming %s:\n%s", skipped, stderr)
		}
	}
	text, stderr, err = c.keep(t, "put", "--replicas", "1", "--no-follow-links", root)
	if err != nil {
		t.Fatalf("keep put --no-follow-links: %v\n%s", err, stderr)
	}
	if strings.Contains(text, "changelog") || strings.Contains(text, "README.link") {
		t.Errorf("--no-follow-links stored a link:\n%s", text)
	}
	_, stderr, err = c.keep(t, "put", filepath.Join(root, "dangling"))
	if err == nil || !strings.Contains(stderr, "symbolic link to \"missing\"") {
		t.Errorf("put of a dangling link: %v\n%s", err, stderr)
	}
}

// get never replaces existing files silently, and a trailing slash makes
// a directory, even for one file.
func TestE2EGetTargets(t *testing.T) {
	c := newInCluster(t, 1)
	src := filepath.Join(t.TempDir(), "one.txt")
	os.WriteFile(src, []byte("new"), 0o644)
	text, stderr, err := c.keep(t, "put", "--replicas", "1", src)
	if err != nil {
		t.Fatalf("keep put: %v\n%s", err, stderr)
	}
	mf := writeManifest(t, text)

	restored := filepath.Join(t.TempDir(), "restored")
	if _, stderr, err := c.keep(t, "get", mf, "-o", restored+"/"); err != nil {
		t.Fatalf("keep get -o DIR/: %v\n%s", err, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(restored, "one.txt")); string(b) != "new" {
		t.Fatalf("restored/one.txt = %q", b)
	}

	dst := filepath.Join(t.TempDir(), "existing.txt")
	for _, tt := range []struct {
		flags []string
		fails bool
		want  string
	}{
		{nil, true, "old"},
		{[]string{"--skip-existing"}, false, "old"},
		{[]string{"-f"}, false, "new"},
	} {
		os.WriteFile(dst, []byte("old"), 0o644)
		args := append([]string{"get", mf, "-o", dst}, tt.flags...)
		_, stderr, err := c.keep(t, args...)
		if (err != nil) != tt.fails {
			t.Errorf("keep get %v: %v\n%s", tt.flags, err, stderr)
		}
		if tt.fails && !strings.Contains(stderr, "already exists") {
			t.Errorf("keep get over an existing file says %q", stderr)
		}
		if b, _ := os.ReadFile(dst); string(b) != tt.want {
			t.Errorf("keep get %v: file holds %q, want %q", tt.flags, b, tt.want)
		}
	}
}

// A name as long as the filesystem allows round-trips.
func TestE2ELongName(t *testing.T) {
	c := newInCluster(t, 1)
	dir := filepath.Join(t.TempDir(), "d")
	os.MkdirAll(dir, 0o755)
	long := strings.Repeat("x", 250)
	os.WriteFile(filepath.Join(dir, long), []byte("long"), 0o644)
	text, stderr, err := c.keep(t, "put", "--replicas", "1", dir)
	if err != nil {
		t.Fatalf("keep put: %v\n%s", err, stderr)
	}
	out := t.TempDir()
	if _, stderr, err := c.keep(t, "get", writeManifest(t, text), "-o", out); err != nil {
		t.Fatalf("keep get: %v\n%s", err, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "d", long)); string(b) != "long" {
		t.Errorf("restored %q", b)
	}
}

// What arv-put and arv-get users rely on: the portable data hash, a
// manifest stored in Keep and read back by hash and path, --raw,
// --exclude, --filename, --dry-run, --md5sum and --manifest.
func TestE2EPutGetFeatures(t *testing.T) {
	c := newInCluster(t, 2)
	dir := filepath.Join(t.TempDir(), "coll")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("alpha"), 0o644)
	os.WriteFile(filepath.Join(dir, "sub", "b.txt"), []byte("beta"), 0o644)
	os.WriteFile(filepath.Join(dir, "skip.tmp"), []byte("junk"), 0o644)

	text, stderr, err := c.keep(t, "put", "--replicas", "1", "--exclude", "*.tmp", dir)
	if err != nil || strings.Contains(text, "skip.tmp") {
		t.Fatalf("put --exclude: %v\n%s\n%s", err, text, stderr)
	}
	m, err := manifest.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	pdh, _, err := c.keep(t, "put", "--replicas", "1", "--exclude", "*.tmp", "--portable-data-hash", dir)
	if err != nil || strings.TrimSpace(pdh) != m.PortableDataHash() {
		t.Errorf("--portable-data-hash printed %q, want %s (%v)", pdh, m.PortableDataHash(), err)
	}
	stored, stderr, err := c.keep(t, "put", "--replicas", "1", "--exclude", "*.tmp", "--store-manifest", dir)
	if err != nil || !strings.HasPrefix(stored, m.PortableDataHash()) {
		t.Fatalf("--store-manifest printed %q, want %s...: %v\n%s", stored, m.PortableDataHash(), err, stderr)
	}
	hash := strings.TrimSpace(stored)
	out, stderr, err := c.keep(t, "get", hash+"/coll/sub/b.txt")
	if err != nil || out != "beta" {
		t.Errorf("get HASH/coll/sub/b.txt: %q, %v\n%s", out, err, stderr)
	}
	dst := t.TempDir()
	if _, stderr, err := c.keep(t, "get", "--md5sum", hash+"/coll/", "-o", dst); err != nil || !strings.Contains(stderr, "2c1743a391305fbf367df8e4f069f9f9  a.txt") {
		t.Errorf("get --md5sum HASH/coll/: %v\n%s", err, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "sub", "b.txt")); string(b) != "beta" {
		t.Errorf("get HASH/coll/ -o DIR wrote sub/b.txt = %q", b)
	}
	bare, _, err := c.keep(t, "get", "--manifest", "--strip-manifest", hash+"/")
	if err != nil || bare != m.BareText() {
		t.Errorf("get --manifest --strip-manifest: %q, want %q (%v)", bare, m.BareText(), err)
	}

	raw, _, err := c.keep(t, "put", "--replicas", "1", "--raw", filepath.Join(dir, "a.txt"))
	if err != nil || strings.TrimSpace(raw) != "2c1743a391305fbf367df8e4f069f9f9+5" {
		t.Errorf("--raw printed %q (%v)", raw, err)
	}
	named, stderr, err := proctest.Run(t, c.env, []byte("from stdin"), "put", "--services", c.services, "--replicas", "1", "--filename", "notes.txt", "-")
	if err != nil || !strings.Contains(named, ":notes.txt") {
		t.Errorf("--filename: %q, %v\n%s", named, err, stderr)
	}
	before := len(c.PutRequests())
	list, stderr, err := c.keep(t, "put", "--dry-run", dir)
	if exitCode(err) != 2 || !strings.Contains(list, "coll/sub/b.txt") || !strings.Contains(stderr, "would store 3 files") {
		t.Errorf("--dry-run: %v\n%s\n%s", err, list, stderr)
	}
	if len(c.PutRequests()) != before {
		t.Error("--dry-run stored something")
	}
}
