package manifest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keepproject/keep/locator"
)

func scanAll(text string) ([]locator.Locator, error) {
	var out []locator.Locator
	err := ScanBlocks(strings.NewReader(text), func(l locator.Locator) error {
		out = append(out, l)
		return nil
	})
	return out, err
}

func TestScanBlocks(t *testing.T) {
	long := ". " + strings.Repeat(fooLoc+" ", 30000) + "0:3:f\n" // one line of 1.3 MB
	tests := []struct {
		name   string
		text   string
		blocks int
		err    string // "" for none; else in the message
		line   int
	}{
		{"empty", "", 0, "", 0},
		{"one stream", ". " + fooLoc + " 0:3:foo\n", 1, "", 0},
		{"repeats and unused blocks", ". " + fooLoc + " " + barLoc + " " + fooLoc + " 0:1:a\n./d " + barLoc + " 0:3:b\n", 4, "", 0},
		{"signed", ". " + fooLoc + sig + " 0:3:foo\n", 1, "", 0},
		{"a line longer than any buffer", long, 30000, "", 0},
		{"no newline", ". " + fooLoc + " 0:3:foo", 1, "missing newline", 1},
		{"trailing space", ". " + fooLoc + " 0:3:foo \n", 1, "empty token", 1},
		{"empty line", ". " + fooLoc + " 0:3:foo\n\n", 1, "empty line", 2},
		{"no files", ". " + fooLoc + "\n", 1, "no file tokens", 1},
		{"no blocks", ". 0:3:foo\n", 0, "expected a block locator", 1},
		{"stream name only", ".\n", 0, "no block locators", 1},
		{"bad stream name", "foo " + fooLoc + " 0:3:foo\n", 0, "stream name", 1},
		{"bad locator", ". acbd+3 0:3:foo\n", 0, "", 1},
		{"no size", ". acbd18db4cc2f85cedef654fccc4a4d8 0:3:foo\n", 0, "no size", 1},
		{"bad file token", ". " + fooLoc + " 0:3\n", 1, "pos:len:name", 1},
		{"control character", ". " + fooLoc + " 0:3:f\to\n", 1, "control character", 1},
		{"second line bad", ". " + fooLoc + " 0:3:foo\n. x 0:3:foo\n", 1, "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scanAll(tt.text)
			if len(got) != tt.blocks {
				t.Errorf("%d blocks, want %d", len(got), tt.blocks)
			}
			wantErr := tt.err != "" || tt.line > 0
			if (err != nil) != wantErr || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			var se *SyntaxError
			if err != nil && (!errors.As(err, &se) || se.Line != tt.line) {
				t.Errorf("error %#v, want a *SyntaxError on line %d", err, tt.line)
			}
		})
	}
	// fn's error stops the scan and is returned as it is.
	stop := errors.New("stop")
	n := 0
	err := ScanBlocks(strings.NewReader(". "+fooLoc+" "+barLoc+" 0:1:a\n"), func(locator.Locator) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("fn's error: %v after %d blocks", err, n)
	}
}

// FuzzScanBlocks: ScanBlocks accepts every manifest Parse accepts and
// yields every block Blocks does, and no locator the text lacks.
func FuzzScanBlocks(f *testing.F) {
	for _, s := range []string{
		"",
		". " + fooLoc + " 0:3:foo\n",
		". " + fooLoc + " " + barLoc + " 1:4:f 0:1:f 5:1:d/g\n./d " + emptyLoc + " 0:0:\\056\n",
		"./a\\040b " + fooLoc + sig + " 0:3:s\\072c\\\\d 0:0:e\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, serr := scanAll(text)
		if serr != nil {
			var se *SyntaxError
			if !errors.As(serr, &se) {
				t.Fatalf("error %T %v, want *SyntaxError", serr, serr)
			}
		}
		for _, l := range got {
			if !strings.Contains(text, l.Hash+"+"+fmt.Sprint(l.Size)) {
				t.Fatalf("yielded %s, not in the text", l)
			}
		}
		m, err := Parse(text)
		if err != nil {
			return
		}
		if serr != nil {
			t.Fatalf("Parse accepts %q, ScanBlocks: %v", text, serr)
		}
		seen := map[string]bool{}
		for _, l := range got {
			seen[fmt.Sprint(l.Hash, "+", l.Size)] = true
		}
		for _, l := range m.Blocks() {
			if !seen[fmt.Sprint(l.Hash, "+", l.Size)] {
				t.Fatalf("%q: Blocks has %s, ScanBlocks does not", text, l)
			}
		}
	})
}
