package transfer_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/keepproject/keep/transfer"
)

// A tree with every kind of entry a real directory has (/usr/share/doc
// has links to directories): what is stored, and what is skipped with a
// warning naming it.
func TestCollectInputsLinksAndSpecialFiles(t *testing.T) {
	root := tree(t, map[string][]byte{"a": []byte("a"), "sub/b": []byte("bb")})
	other := tree(t, map[string][]byte{"c": []byte("ccc")})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(other, filepath.Join(root, "dirlink")))
	must(os.Symlink("a", filepath.Join(root, "filelink")))
	must(os.Symlink("nowhere", filepath.Join(root, "dangling")))
	must(os.Symlink("..", filepath.Join(root, "sub", "loop")))
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Skip(err)
	}
	tests := []struct {
		name   string
		opts   transfer.CollectOptions
		stored []string
		total  int64
		warned []string // entries each warning names, in order
	}{
		{"follow links", transfer.CollectOptions{},
			[]string{"src", "src/a", "src/dirlink", "src/dirlink/c", "src/dirlink/empty", "src/empty", "src/filelink", "src/sub", "src/sub/b"}, 7,
			[]string{"dangling", "fifo", "sub/loop"}},
		{"no follow links", transfer.CollectOptions{NoFollowLinks: true},
			[]string{"src", "src/a", "src/empty", "src/sub", "src/sub/b"}, 3,
			[]string{"dangling", "dirlink", "fifo", "filelink", "sub/loop"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warnings []string
			tt.opts.Warn = func(msg string) { warnings = append(warnings, msg) }
			in, total, err := transfer.CollectInputs([]string{root}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, i := range in {
				names = append(names, i.Name)
			}
			if !slices.Equal(names, tt.stored) || total != tt.total {
				t.Errorf("stored %q (%d bytes), want %q (%d)", names, total, tt.stored, tt.total)
			}
			if len(warnings) != len(tt.warned) {
				t.Fatalf("warnings %q, want one each for %q", warnings, tt.warned)
			}
			for i, w := range warnings {
				if !strings.Contains(w, filepath.Join(root, tt.warned[i])+":") {
					t.Errorf("warning %q does not name %s", w, tt.warned[i])
				}
			}
		})
	}
}

// Paths named on the command line that cannot be stored are errors that
// say why, not bare stat errors.
func TestCollectInputsTopLevelErrors(t *testing.T) {
	dir := t.TempDir()
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink("nowhere", dangling); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		opts transfer.CollectOptions
		want string
	}{
		{dangling, transfer.CollectOptions{}, `is a symbolic link to "nowhere", which cannot be read`},
		{filepath.Join(dir, "missing"), transfer.CollectOptions{}, "no such file or directory"},
		{fifo, transfer.CollectOptions{}, "is a FIFO, not a file or directory"},
		{link, transfer.CollectOptions{NoFollowLinks: true}, "is a symbolic link, and --no-follow-links stores none"},
	}
	for _, tt := range tests {
		_, _, err := transfer.CollectInputs([]string{tt.path}, tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "lstat") {
			t.Errorf("CollectInputs(%s): %v, want %q", tt.path, err, tt.want)
		}
	}
}

func TestCollectInputsExclude(t *testing.T) {
	root := tree(t, map[string][]byte{"a.txt": nil, "b.bin": nil, "sub/c.txt": nil, "sub/d.bin": nil, "tmp/e": nil})
	tests := []struct {
		exclude []string
		want    []string
	}{
		{nil, []string{"src", "src/a.txt", "src/b.bin", "src/empty", "src/sub", "src/sub/c.txt", "src/sub/d.bin", "src/tmp", "src/tmp/e"}},
		{[]string{"*.txt"}, []string{"src", "src/b.bin", "src/empty", "src/sub", "src/sub/d.bin", "src/tmp", "src/tmp/e"}},
		{[]string{"sub/*.txt"}, []string{"src", "src/a.txt", "src/b.bin", "src/empty", "src/sub", "src/sub/d.bin", "src/tmp", "src/tmp/e"}},
		{[]string{"tmp", "*.bin"}, []string{"src", "src/a.txt", "src/empty", "src/sub", "src/sub/c.txt"}},
	}
	for _, tt := range tests {
		in, _, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{Exclude: tt.exclude})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, i := range in {
			names = append(names, i.Name)
		}
		if !slices.Equal(names, tt.want) {
			t.Errorf("exclude %q: %q, want %q", tt.exclude, names, tt.want)
		}
	}
	if _, _, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{Exclude: []string{"["}}); err == nil {
		t.Error("a malformed pattern was accepted")
	}
}
