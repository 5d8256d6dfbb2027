package manifest

import (
	"strings"
	"testing"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestParseNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty manifest", "", ""},
		{"one file", ". " + fooLoc + " 0:3:foo\n", ". " + fooLoc + " 0:3:foo\n"},
		{"files sorted, blocks by first use",
			". " + fooLoc + " " + barLoc + " 0:3:z 3:3:a\n",
			". " + barLoc + " " + fooLoc + " 0:3:a 3:3:z\n"},
		{"name with slash moves to its stream",
			". " + fooLoc + " 0:3:d/sub/x\n",
			"./d/sub " + fooLoc + " 0:3:x\n"},
		{"streams sorted, each with its own blocks",
			"./b " + fooLoc + " 0:3:x\n. " + fooLoc + " " + barLoc + " 3:3:y\n",
			". " + barLoc + " 0:3:y\n./b " + fooLoc + " 0:3:x\n"},
		{"streams sorted by component",
			"./a\\040b " + fooLoc + " 0:3:x\n./a/b " + fooLoc + " 0:3:x\n./a " + fooLoc + " 0:3:x\n",
			"./a " + fooLoc + " 0:3:x\n./a/b " + fooLoc + " 0:3:x\n./a\\040b " + fooLoc + " 0:3:x\n"},
		{"repeated path concatenates and merges",
			". " + fooLoc + " " + barLoc + " 0:3:f 3:3:f\n",
			". " + fooLoc + " " + barLoc + " 0:6:f\n"},
		{"repeated path out of order",
			". " + fooLoc + " " + barLoc + " 3:3:f 0:3:f\n",
			". " + barLoc + " " + fooLoc + " 0:6:f\n"},
		{"repeated path on two lines",
			". " + fooLoc + " 0:3:f\n. " + barLoc + " 0:3:f\n",
			". " + fooLoc + " " + barLoc + " 0:6:f\n"},
		{"same path via stream and slash name",
			"./d " + fooLoc + " 0:3:f\n. " + barLoc + " 0:3:d/f\n",
			"./d " + fooLoc + " " + barLoc + " 0:6:f\n"},
		{"non-contiguous segments stay apart",
			". " + fooLoc + " 0:1:f 2:1:f\n",
			". " + fooLoc + " 0:1:f 2:1:f\n"},
		{"segment crossing a block boundary",
			". " + fooLoc + " " + barLoc + " 2:2:f\n",
			". " + fooLoc + " " + barLoc + " 2:2:f\n"},
		{"unused block dropped", ". " + fooLoc + " " + barLoc + " 0:3:f\n", ". " + fooLoc + " 0:3:f\n"},
		{"block shared by files", ". " + fooLoc + " 0:3:f 1:2:g\n", ". " + fooLoc + " 0:3:f 1:2:g\n"},
		{"duplicate block listed once",
			". " + fooLoc + " " + fooLoc + " 0:3:f 3:3:g\n",
			". " + fooLoc + " 0:3:f 0:3:g\n"},
		{"zero-size block skipped",
			". " + fooLoc + " " + emptyLoc + " " + barLoc + " 0:6:f\n",
			". " + fooLoc + " " + barLoc + " 0:6:f\n"},
		{"empty file alone", ". " + emptyLoc + " 0:0:e\n", ". " + emptyLoc + " 0:0:e\n"},
		{"empty file in data stream", ". " + fooLoc + " 0:3:f 0:0:e\n", ". " + fooLoc + " 0:0:e 0:3:f\n"},
		{"empty file with a data block", "./d " + fooLoc + " 3:0:e\n", "./d " + emptyLoc + " 0:0:e\n"},
		{"empty directory", "./d " + emptyLoc + " 0:0:\\056\n", "./d " + emptyLoc + " 0:0:\\056\n"},
		{"empty directory unescaped dot", "./d " + emptyLoc + " 0:0:.\n", "./d " + emptyLoc + " 0:0:\\056\n"},
		{"directory marker with files dropped",
			"./d " + fooLoc + " 0:3:f 0:0:\\056\n",
			"./d " + fooLoc + " 0:3:f\n"},
		{"directory marker with subdirectory dropped",
			"./d " + emptyLoc + " 0:0:\\056\n./d/e " + emptyLoc + " 0:0:\\056\n",
			"./d/e " + emptyLoc + " 0:0:\\056\n"},
		{"root marker dropped", ". " + emptyLoc + " 0:0:\\056\n", ""},
		{"escapes",
			"./a\\040dir " + fooLoc + " 0:3:s\\040c\\072b\\134n\\012t\\011\n",
			"./a\\040dir " + fooLoc + " 0:3:s\\040c\\072b\\134n\\012t\\011\n"},
		{"double backslash and raw colon", ". " + fooLoc + " 0:3:a\\\\b:c\n", ". " + fooLoc + " 0:3:a\\134b\\072c\n"},
		{"escaped slash splits the path", ". " + fooLoc + " 0:3:d\\057f\n", "./d " + fooLoc + " 0:3:f\n"},
		{"high bytes unescaped", ". " + fooLoc + " 0:3:\\303\\251t\\177\n", ". " + fooLoc + " 0:3:\xc3\xa9t\x7f\n"},
		{"signed locator kept", ". " + fooLoc + sig + " 0:3:foo\n", ". " + fooLoc + sig + " 0:3:foo\n"},
		{"other hints kept", ". " + fooLoc + "+K@zzzzz+Zsomething 0:3:foo\n", ". " + fooLoc + "+K@zzzzz+Zsomething 0:3:foo\n"},
		{"first of two signatures kept",
			". " + fooLoc + sig + " 0:3:a\n. " + fooLoc + "+K@zzzzz 0:3:b\n",
			". " + fooLoc + sig + " 0:3:a 0:3:b\n"},
		{"leading zeros", ". " + fooLoc + " 00:003:f\n", ". " + fooLoc + " 0:3:f\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := m.Text()
			if got != tt.want {
				t.Errorf("Text:\n got %q\nwant %q", got, tt.want)
			}
			m2, err := Parse(got)
			if err != nil {
				t.Fatalf("Parse(Text): %v", err)
			}
			if again := m2.Text(); again != got {
				t.Errorf("Text not stable:\n first %q\nsecond %q", got, again)
			}
			if err := m.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestParseSegments(t *testing.T) {
	foo, bar := mustLoc(t, fooLoc), mustLoc(t, barLoc)
	tests := []struct {
		name string
		in   string
		want []File
	}{
		{"crossing", ". " + fooLoc + " " + barLoc + " 1:4:f\n",
			[]File{{"f", []Segment{{foo, 1, 2}, {bar, 0, 2}}}}},
		{"crossing a zero-size block", ". " + fooLoc + " " + emptyLoc + " " + barLoc + " 2:2:f\n",
			[]File{{"f", []Segment{{foo, 2, 1}, {bar, 0, 1}}}}},
		{"spanning three blocks", ". " + fooLoc + " " + barLoc + " " + fooLoc + " 2:5:f\n",
			[]File{{"f", []Segment{{foo, 2, 1}, {bar, 0, 3}, {foo, 0, 1}}}}},
		{"repeated path, first-appearance order", ". " + fooLoc + " " + barLoc + " 3:3:b 0:1:a 1:2:a 0:0:b\n",
			[]File{{"b", []Segment{{bar, 0, 3}}}, {"a", []Segment{{foo, 0, 3}}}}},
		{"empty files", ". " + emptyLoc + " 0:0:e 0:0:d/e\n",
			[]File{{"e", nil}, {"d/e", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !equalFiles(m.Files, tt.want, false) {
				t.Errorf("Files:\n got %v\nwant %v", m.Files, tt.want)
			}
		})
	}
}

// equalFiles compares file lists, comparing locators fully or, when bare,
// by hash and size only.
func equalFiles(a, b []File, bare bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Path != b[i].Path || len(a[i].Segments) != len(b[i].Segments) {
			return false
		}
		for j, s := range a[i].Segments {
			u := b[i].Segments[j]
			if s.Offset != u.Offset || s.Length != u.Length || keyOf(s.Block) != keyOf(u.Block) {
				return false
			}
			if !bare && s.Block.String() != u.Block.String() {
				return false
			}
		}
	}
	return true
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		line, token int
		want        string
	}{
		{"bad stream name", "a " + fooLoc + " 0:3:f\n", 1, 1, `does not start with "./"`},
		{"stream name dot dot", ".. " + fooLoc + " 0:3:f\n", 1, 1, `does not start with "./"`},
		{"stream name trailing slash", "./a/ " + fooLoc + " 0:3:f\n", 1, 1, `ends with "/"`},
		{"stream name bare ./", "./ " + fooLoc + " 0:3:f\n", 1, 1, "is empty"},
		{"stream name ..", "./../x " + fooLoc + " 0:3:f\n", 1, 1, `has a ".." component`},
		{"stream name .", "./a/./b " + fooLoc + " 0:3:f\n", 1, 1, `has a "." component`},
		{"stream name //", "./a//b " + fooLoc + " 0:3:f\n", 1, 1, `contains "//"`},
		{"no file tokens", ". " + fooLoc + "\n", 1, 0, "has no file tokens"},
		{"no locators", ".\n", 1, 0, "has no block locators"},
		{"file token instead of locator", ". 0:3:f\n", 1, 2, "expected a block locator"},
		{"bad locator", ". xyz 0:3:f\n", 1, 2, "invalid locator"},
		{"locator without size", ". acbd18db4cc2f85cedef654fccc4a4d8 0:3:f\n", 1, 2, "has no size"},
		{"locator after files", ". " + fooLoc + " 0:3:f " + barLoc + "\n", 1, 4, "expected a pos:len:name"},
		{"one colon", ". " + fooLoc + " 0:3\n", 1, 3, "expected a pos:len:name"},
		{"beyond blocks", ". " + fooLoc + " 0:4:f\n", 1, 3, "beyond the 3 bytes"},
		{"pos beyond blocks", ". " + fooLoc + " 4:0:f\n", 1, 3, "beyond the 3 bytes"},
		{"range end beyond", ". " + fooLoc + " " + barLoc + " 5:2:f\n", 1, 4, "beyond the 6 bytes"},
		{"huge length", ". " + fooLoc + " 1:9223372036854775807:f\n", 1, 3, "beyond"},
		{"too large number", ". " + fooLoc + " 0:99999999999999999999:f\n", 1, 3, "too large"},
		{"non-numeric pos", ". " + fooLoc + " x:3:f\n", 1, 3, `position "x" is not a decimal number`},
		{"negative length", ". " + fooLoc + " 0:-1:f\n", 1, 3, `length "-1" is not a decimal number`},
		{"empty pos", ". " + fooLoc + " :3:f\n", 1, 3, "position is empty"},
		{"empty name", ". " + fooLoc + " 0:3:\n", 1, 3, "is empty"},
		{"name ..", ". " + fooLoc + " 0:3:..\n", 1, 3, `has a ".." component`},
		{"name with ..", ". " + fooLoc + " 0:3:a/../b\n", 1, 3, `has a ".." component`},
		{"name with //", ". " + fooLoc + " 0:3:a//b\n", 1, 3, `contains "//"`},
		{"name with leading /", ". " + fooLoc + " 0:3:/a\n", 1, 3, `starts with "/"`},
		{"name with trailing /", ". " + fooLoc + " 0:3:a/\n", 1, 3, `ends with "/"`},
		{"dot with data", ". " + fooLoc + " 0:1:.\n", 1, 3, "nonzero length"},
		{"bad escape", ". " + fooLoc + " 0:3:a\\x\n", 1, 3, "bad escape"},
		{"escape out of range", ". " + fooLoc + " 0:3:a\\400\n", 1, 3, "bad escape"},
		{"short escape", ". " + fooLoc + " 0:3:a\\01\n", 1, 3, "bad escape"},
		{"non-octal escape", ". " + fooLoc + " 0:3:a\\018\n", 1, 3, "bad escape"},
		{"bad escape in stream", "./a\\9 " + fooLoc + " 0:3:f\n", 1, 1, "bad escape"},
		{"raw tab", ". " + fooLoc + " 0:3:a\tb\n", 1, 3, "unescaped control character"},
		{"raw CR", ". " + fooLoc + " 0:3:f\r\n", 1, 3, "unescaped control character"},
		{"double space", ". " + fooLoc + "  0:3:f\n", 1, 3, "empty token"},
		{"trailing space", ". " + fooLoc + " 0:3:f \n", 1, 4, "empty token"},
		{"leading space", " . " + fooLoc + " 0:3:f\n", 1, 1, "empty token"},
		{"missing newline", ". " + fooLoc + " 0:3:f\n. " + fooLoc + " 0:3:g", 2, 0, "missing newline"},
		{"empty line", ". " + fooLoc + " 0:3:f\n\n", 2, 0, "empty line"},
		{"lone newline", "\n", 1, 0, "empty line"},
		{"error on line 2", ". " + fooLoc + " 0:3:f\n. " + fooLoc + " 0:3:g 0:9:h\n", 2, 4, "beyond"},
		{"file then directory", ". " + fooLoc + " 0:3:a 0:3:a/b\n", 1, 4, `"a" is both a file and a directory`},
		{"directory then file", "./a " + fooLoc + " 0:3:b\n. " + fooLoc + " 0:3:a\n", 2, 3, `"a" is both a file and a directory`},
		{"marker on a file", ". " + fooLoc + " 0:3:a\n./a " + emptyLoc + " 0:0:\\056\n", 2, 3, "both a file and a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse succeeded: %q", m.Text())
			}
			se, ok := err.(*SyntaxError)
			if !ok {
				t.Fatalf("error %T %v, want *SyntaxError", err, err)
			}
			if se.Line != tt.line || se.Token != tt.token {
				t.Errorf("error at line %d token %d, want line %d token %d: %v", se.Line, se.Token, tt.line, tt.token, err)
			}
			if !contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			prefix := "manifest: line "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
		})
	}
}

func TestSyntaxErrorTruncatesToken(t *testing.T) {
	long := strings.Repeat("x", 1000)
	_, err := Parse(". " + fooLoc + " 0:3:" + long + "/\n")
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if len(err.Error()) > 400 {
		t.Errorf("error is %d bytes long, want the token shortened: %v", len(err.Error()), err)
	}
}

func TestPortableDataHash(t *testing.T) {
	tests := []struct{ in, want string }{
		{". " + fooLoc + " 0:3:foo\n", "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"},
		{". " + fooLoc + sig + " 0:3:foo\n", "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"},
		{". " + fooLoc + "+K@zzzzz" + sig + " 0:3:foo\n", "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"},
		{"", "d41d8cd98f00b204e9800998ecf8427e+0"},
	}
	for _, tt := range tests {
		m, err := Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.PortableDataHash(); got != tt.want {
			t.Errorf("PortableDataHash(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestTextBuiltManifest(t *testing.T) {
	foo, bar := mustLoc(t, fooLoc), mustLoc(t, barLoc)
	m := &Manifest{
		Files: []File{
			{"z/b", []Segment{{bar, 0, 3}}},
			{"z/a", []Segment{{foo, 0, 3}, {bar, 0, 1}}},
			{"top", []Segment{{bar, 2, 1}, {foo, 0, 0}}},
			{"e", nil},
		},
		Dirs: []string{"empty/one", "z"},
	}
	want := ". " + barLoc + " 0:0:e 2:1:top\n" +
		"./empty/one " + emptyLoc + " 0:0:\\056\n" +
		"./z " + fooLoc + " " + barLoc + " 0:4:a 3:3:b\n"
	if got := m.Text(); got != want {
		t.Errorf("Text:\n got %q\nwant %q", got, want)
	}
}

func TestComparePath(t *testing.T) {
	sorted := []string{"", "a", "a/b", "a/b/c", "a/b\x00", "a/bc", "a\x00", "a b", "a-b", "ab", "b"}
	for i := range sorted {
		for j := range sorted {
			got := comparePath(sorted[i], sorted[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("comparePath(%q, %q) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
}
