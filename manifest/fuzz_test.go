package manifest

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		". " + fooLoc + " 0:3:foo\n",
		". " + fooLoc + " " + barLoc + " 1:4:f 0:1:f 5:1:d/g\n./d " + emptyLoc + " 0:0:\\056\n",
		"./a\\040b " + fooLoc + sig + " 0:3:s\\072c\\\\d 0:0:e\n",
		"./x " + emptyLoc + " 0:0:\\056\n./x/y " + barLoc + " 0:3:z\n",
		". " + fooLoc + " " + fooLoc + " 2:3:a 0:0:b\n. " + barLoc + " 0:2:a\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		m, err := Parse(text)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error %T %v, want *SyntaxError", err, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Validate after Parse: %v", err)
		}
		norm := m.Text()
		m2, err := Parse(norm)
		if err != nil {
			t.Fatalf("Parse(Text) of %q: %v\ntext %q", text, err, norm)
		}
		// Same files with the same content, whatever the order.
		byPath := make(map[string]File, len(m.Files))
		for _, f := range m.Files {
			byPath[f.Path] = f
		}
		if len(m2.Files) != len(m.Files) {
			t.Fatalf("%d files after round trip, want %d\ntext %q", len(m2.Files), len(m.Files), norm)
		}
		for _, f2 := range m2.Files {
			f, ok := byPath[f2.Path]
			if !ok || !equalFiles([]File{f}, []File{f2}, true) {
				t.Fatalf("file %q changed in round trip:\n got %v\nwant %v\ntext %q", f2.Path, f2, f, norm)
			}
		}
		if again := m2.Text(); again != norm {
			t.Fatalf("Text not stable:\n first %q\nsecond %q", norm, again)
		}
		if m.PortableDataHash() != m2.PortableDataHash() {
			t.Fatalf("PDH changed in round trip")
		}
		if norm != "" && !strings.HasSuffix(norm, "\n") {
			t.Fatalf("Text %q lacks final newline", norm)
		}
	})
}
