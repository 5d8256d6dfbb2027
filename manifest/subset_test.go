package manifest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/keepproject/keep/locator"
)

func TestSubset(t *testing.T) {
	m, err := Parse(". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:top\n" +
		"./dir acbd18db4cc2f85cedef654fccc4a4d8+3 0:1:a 1:2:b\n" +
		"./dir/sub acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:c\n" +
		"./dir/empty d41d8cd98f00b204e9800998ecf8427e+0 0:0:\\056\n")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path  string
		files string
		dirs  string
		err   string
	}{
		{"", "[top dir/a dir/b dir/sub/c]", "[dir/empty]", ""},
		{"top", "[top]", "[]", ""},
		{"dir/sub/c", "[c]", "[]", ""},
		{"dir", "[a b sub/c]", "[empty]", ""},
		{"dir/", "[a b sub/c]", "[empty]", ""},
		{"dir/empty", "[]", "[]", ""},
		{"nope", "", "", "no file or directory"},
		{"dir/../top", "", "", "path"},
	}
	for _, tt := range tests {
		s, err := m.Subset(tt.path)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Subset(%q): %v, want %q", tt.path, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Subset(%q): %v", tt.path, err)
			continue
		}
		var files []string
		for _, f := range s.Files {
			files = append(files, f.Path)
		}
		if fmt.Sprint(files) != tt.files || fmt.Sprint(s.Dirs) != tt.dirs && !(len(s.Dirs) == 0 && tt.dirs == "[]") {
			t.Errorf("Subset(%q) = files %v dirs %v; want %s %s", tt.path, files, s.Dirs, tt.files, tt.dirs)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("Subset(%q) is not valid: %v", tt.path, err)
		}
	}
}

// BareText is what the portable data hash hashes: storing it as a block
// gives a locator equal to the hash.
func TestBareText(t *testing.T) {
	m, err := Parse(". acbd18db4cc2f85cedef654fccc4a4d8+3+Add8cc5ff6b29fdb370cbdbee163849568a2765f3@7fffffff 0:3:foo\n")
	if err != nil {
		t.Fatal(err)
	}
	bare := m.BareText()
	if bare != ". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo\n" {
		t.Errorf("BareText = %q", bare)
	}
	if got := locator.New([]byte(bare)).String(); got != m.PortableDataHash() {
		t.Errorf("locator of the bare text %s, portable data hash %s", got, m.PortableDataHash())
	}
}
