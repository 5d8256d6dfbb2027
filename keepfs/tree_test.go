package keepfs

import (
	"flag"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/heapstat"
	"github.com/keepproject/keep/internal/synth"
	"github.com/keepproject/keep/manifest"
)

var treeFiles = flag.Int("tree-files", 20000, "files in the manifest of TestTreeMemory (the issue asks about 100000)")

func TestTreeMemory(t *testing.T) {
	text := synth.FilesManifest(*treeFiles)
	before := heapstat.Live()
	stop := heapstat.Peak()
	start := time.Now()
	var b TreeBuilder
	if err := b.AddText("", text); err != nil {
		t.Fatal(err)
	}
	tree, err := b.Tree()
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	peak := int64(stop()) - int64(before)
	held := int64(heapstat.Live()) - int64(before)
	t.Logf("%d files: built in %v; manifest text %d bytes; tree %d bytes of heap (%.2f× the text, %.1f bytes a file); peak while building %d bytes (%.2f× the text)",
		tree.Files(), took.Round(time.Millisecond), len(text), held, float64(held)/float64(len(text)), float64(held)/float64(tree.Files()), peak, float64(peak)/float64(len(text)))
	// 24 bytes a file and its name, against the name and its
	// position and length (and a share of the locators) in the text.
	if held > 2*int64(len(text)) {
		t.Errorf("the tree holds %d bytes, more than twice the manifest text's %d", held, len(text))
	}
	runtime.KeepAlive(tree)
	runtime.KeepAlive(text)
}

// walkTree lists the tree's files as "path size" lines, in order.
func walkTree(t *Tree) []string {
	var out []string
	var walk func(i uint32, prefix string)
	walk = func(i uint32, prefix string) {
		n := t.nodes[i]
		for c := n.first; c < n.first+n.count; c++ {
			p := prefix + t.name(c)
			if t.nodes[c].isDir() {
				out = append(out, p+"/")
				walk(c, p+"/")
			} else {
				out = append(out, fmt.Sprintf("%s %d", p, t.size(c)))
			}
		}
	}
	walk(0, "")
	return out
}

func TestTreeBuilder(t *testing.T) {
	const (
		a = "acbd18db4cc2f85cedef654fccc4a4d8+3"
		b = "37b51d194a7513e7b9d2aa34c8f6d4f0+3"
	)
	type add struct{ prefix, text string }
	tests := []struct {
		name string
		adds []add
		want string // files and directories, or the error
	}{
		{"one stream", []add{{"", ". " + a + " 0:1:x 1:2:y\n"}}, "x 1, y 2"},
		{"nested, sorted", []add{{"", "./d/e " + a + " 0:3:z\n. " + a + " 0:3:b 0:0:a\n"}}, "a 0, b 3, d/, d/e/, d/e/z 3"},
		{"escaped names", []add{{"", ". " + a + " 0:3:sp\\040ace 0:3:back\\134slash\n"}}, "back\\slash 3, sp ace 3"},
		{"empty directory", []add{{"", "./e d41d8cd98f00b204e9800998ecf8427e+0 0:0:.\n"}}, "e/"},
		{"file across streams", []add{{"", ". " + a + " 0:3:f\n. " + b + " 0:3:f\n"}}, "f 6"},
		{"under prefixes", []add{{"one", ". " + a + " 0:3:f\n"}, {"two/deep", ". " + b + " 0:3:f\n"}}, "one/, one/f 3, two/, two/deep/, two/deep/f 3"},
		{"same file in two manifests", []add{{"", ". " + a + " 0:3:f\n"}, {"", ". " + b + " 0:3:f\n"}}, `"f" is listed twice`},
		{"file and directory", []add{{"", ". " + a + " 0:3:f\n"}, {"", "./f " + b + " 0:3:g\n"}}, `"f" is both a file and a directory`},
		{"bad text", []add{{"", ". " + a + " 0:3:f\n.  " + a + " 0:3:g\n"}}, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bld TreeBuilder
			var err error
			for _, ad := range tt.adds {
				if err = bld.AddText(ad.prefix, ad.text); err != nil {
					break
				}
			}
			var tree *Tree
			if err == nil {
				tree, err = bld.Tree()
			}
			var got string
			if err != nil {
				got = err.Error()
			} else {
				got = strings.Join(walkTree(tree), ", ")
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTreeMatchesParse checks that AddText, a stream at a time, sees
// the files manifest.Parse sees in the whole text.
func TestTreeMatchesParse(t *testing.T) {
	text := synth.FilesManifest(2500)
	m, err := manifest.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	var b TreeBuilder
	if err := b.AddText("", text); err != nil {
		t.Fatal(err)
	}
	tree, err := b.Tree()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		i := uint32(0)
		for name := range strings.SplitSeq(f.Path, "/") {
			var ok bool
			if i, ok = tree.lookup(i, name); !ok {
				t.Fatalf("%s not in the tree", f.Path)
			}
		}
		if got := tree.size(i); got != f.Size() {
			t.Errorf("%s: size %d, want %d", f.Path, got, f.Size())
		}
	}
	if tree.Files() != len(m.Files) {
		t.Errorf("%d files, want %d", tree.Files(), len(m.Files))
	}
}
