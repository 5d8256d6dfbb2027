package transfer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

// putTree stores files and returns the manifest.
func putTree(t *testing.T, c *keeptest.Cluster, files map[string][]byte) *manifest.Manifest {
	t.Helper()
	root := tree(t, files)
	in, _, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, short, err := transfer.Put(context.Background(), client(t, c, 1), in, transfer.PutOptions{})
	if err != nil || len(short) > 0 {
		t.Fatalf("Put: %v %v", err, short)
	}
	return m
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Existing files are never replaced silently: Get refuses before writing
// anything, unless told to overwrite them or to leave them alone.
func TestGetExistingFiles(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	m := putTree(t, c, map[string][]byte{"a": []byte("new a"), "b": []byte("new b")})
	kc := client(t, c, 1)
	tests := []struct {
		name   string
		opts   transfer.GetOptions
		err    bool
		a, b   string // contents afterwards; "" for absent
		before int    // GET requests expected
	}{
		{"refuse", transfer.GetOptions{}, true, "old a", "", 0},
		{"overwrite", transfer.GetOptions{Overwrite: true}, false, "new a", "new b", 1},
		{"skip existing", transfer.GetOptions{SkipExisting: true}, false, "old a", "new b", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			os.MkdirAll(filepath.Join(out, "src"), 0o755)
			os.WriteFile(filepath.Join(out, "src", "a"), []byte("old a"), 0o644)
			reqs := len(c.Requests())
			err := transfer.Get(context.Background(), kc, m, out, nil, tt.opts)
			var ee *transfer.ExistsError
			if tt.err != errors.As(err, &ee) {
				t.Fatalf("Get: %v", err)
			}
			if tt.err && (len(ee.Paths) != 1 || !strings.Contains(err.Error(), "-f overwrites")) {
				t.Errorf("error %v", err)
			}
			if got := readFile(t, filepath.Join(out, "src", "a")); got != tt.a {
				t.Errorf("a = %q, want %q", got, tt.a)
			}
			b, err := os.ReadFile(filepath.Join(out, "src", "b"))
			if string(b) != tt.b || (tt.b == "") != os.IsNotExist(err) {
				t.Errorf("b = %q (%v), want %q", b, err, tt.b)
			}
			if n := len(c.Requests()) - reqs; n != tt.before {
				t.Errorf("%d block requests, want %d", n, tt.before)
			}
		})
	}
	// One file to one path: the same rule.
	one := putTree(t, c, map[string][]byte{"only": []byte("only")})
	one.Files, one.Dirs = one.Files[:1], nil
	dst := filepath.Join(t.TempDir(), "file")
	os.WriteFile(dst, []byte("keep me"), 0o644)
	if err := transfer.Get(context.Background(), kc, one, dst, nil, transfer.GetOptions{}); err == nil || readFile(t, dst) != "keep me" {
		t.Errorf("Get over an existing file: %v, content %q", err, readFile(t, dst))
	}
}

// A trailing slash names a directory, created if need be, even for a
// one-file manifest (the README's restore step).
func TestGetTrailingSlashIsDirectory(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	m := putTree(t, c, map[string][]byte{"one.txt": []byte("one")})
	m.Dirs = nil
	var only []manifest.File
	for _, f := range m.Files {
		if strings.HasSuffix(f.Path, "one.txt") {
			only = append(only, f)
		}
	}
	m.Files = only
	out := filepath.Join(t.TempDir(), "restored") + "/"
	if err := transfer.Get(context.Background(), client(t, c, 1), m, out, nil, transfer.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(out, "src", "one.txt")); got != "one" {
		t.Errorf("restored %q", got)
	}
}

// Every name the filesystem holds can be restored: the temporary name
// does not grow with it.
func TestGetLongNames(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	long := strings.Repeat("n", 255)
	m := putTree(t, c, map[string][]byte{long: []byte("long")})
	out := t.TempDir()
	if err := transfer.Get(context.Background(), client(t, c, 1), m, out, nil, transfer.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(out, "src", long)); got != "long" {
		t.Errorf("restored %q", got)
	}
	entries, _ := os.ReadDir(filepath.Join(out, "src"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".keep-get-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestGetStreamedFile: a file made of whole blocks is written block by
// block into place as the blocks arrive, several at once: its content
// is exact past a corrupt copy, and a block that cannot be read leaves
// neither the file nor a temporary file behind. A file sharing a block
// with another (not whole blocks) comes out exact as well.
func TestGetStreamedFile(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := client(t, c, 2)
	big := random(10 * 1024) // ten whole blocks; "small" starts the eleventh
	root := tree(t, map[string][]byte{"big": big, "small": []byte("shares a block")})
	in, _, err := transfer.CollectInputs([]string{filepath.Join(root, "big"), filepath.Join(root, "small")}, transfer.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, short, err := transfer.Put(context.Background(), kc, in, transfer.PutOptions{BlockSize: 1024})
	if err != nil || len(short) > 0 {
		t.Fatalf("Put: %v %v", err, short)
	}
	blocks := m.Blocks()
	if len(blocks) != 11 {
		t.Fatalf("%d blocks, want 11", len(blocks))
	}
	// The first server asked for the third block answers corrupt data.
	c.ProbeOrder(blocks[2].Hash)[0].SetCorrupt(true)

	out := t.TempDir() + "/"
	if err := transfer.Get(context.Background(), kc, m, out, nil, transfer.GetOptions{BlocksAhead: 3}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(out, "big")); got != string(big) {
		t.Errorf("big: %d bytes, not the file", len(got))
	}
	if got := readFile(t, filepath.Join(out, "small")); got != "shares a block" {
		t.Errorf("small = %q", got)
	}

	// Lose every copy of the fifth block.
	for _, s := range c.ProbeOrder(blocks[4].Hash) {
		s.Delete(blocks[4].Hash)
	}
	out2 := t.TempDir()
	dst := filepath.Join(out2, "big")
	one := &manifest.Manifest{Files: []manifest.File{m.Files[0]}}
	err = transfer.Get(context.Background(), kc, one, dst, nil, transfer.GetOptions{})
	if err == nil || !strings.Contains(err.Error(), blocks[4].Bare().String()) {
		t.Fatalf("Get with a block lost = %v, want an error naming it", err)
	}
	if left, _ := os.ReadDir(out2); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
