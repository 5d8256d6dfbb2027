package manifest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/locator"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Locators of the blocks "foo", "bar" and "", used throughout the tests.
const (
	fooLoc   = "acbd18db4cc2f85cedef654fccc4a4d8+3"
	barLoc   = "37b51d194a7513e45b56f6524f2d51f2+3"
	emptyLoc = "d41d8cd98f00b204e9800998ecf8427e+0"
	sig      = "+A89118b78732c33104a4d6231e8b5a5fa1e4301e3@7fffffff"
)

// memStore is an in-memory block store for Packer and WriteFile tests.
type memStore struct {
	mu      sync.Mutex
	blocks  map[string][]byte
	fetches int
}

func newMemStore() *memStore { return &memStore{blocks: make(map[string][]byte)} }

func (s *memStore) put(data []byte) locator.Locator {
	l := locator.New(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks[l.Hash] = slices.Clone(data)
	return l
}

func (s *memStore) fetch(ctx context.Context, l locator.Locator) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	b, ok := s.blocks[l.Hash]
	if !ok {
		return nil, fmt.Errorf("block %s not found", l.Hash)
	}
	return b, nil
}

func mustLoc(t testing.TB, s string) locator.Locator {
	t.Helper()
	l, err := locator.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestFileSize(t *testing.T) {
	foo := mustLoc(t, fooLoc)
	f := File{Path: "x", Segments: []Segment{{foo, 0, 3}, {foo, 1, 2}}}
	if got := f.Size(); got != 5 {
		t.Errorf("Size = %d, want 5", got)
	}
	if got := (File{Path: "e"}).Size(); got != 0 {
		t.Errorf("empty Size = %d, want 0", got)
	}
}

func TestBlocks(t *testing.T) {
	m, err := Parse("./d " + barLoc + " " + fooLoc + sig + " 0:6:x\n. " + fooLoc + " " + barLoc + " 0:6:y\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range m.Blocks() {
		got = append(got, l.String())
	}
	want := []string{barLoc, fooLoc + sig}
	if !slices.Equal(got, want) {
		t.Errorf("Blocks = %q, want %q", got, want)
	}
	if b := (&Manifest{}).Blocks(); len(b) != 0 {
		t.Errorf("empty manifest Blocks = %v", b)
	}
}

func TestValidate(t *testing.T) {
	foo := mustLoc(t, fooLoc)
	noSize := mustLoc(t, "acbd18db4cc2f85cedef654fccc4a4d8")
	tests := []struct {
		name string
		m    Manifest
		want string // "" for valid
	}{
		{"empty", Manifest{}, ""},
		{"ok", Manifest{Files: []File{{"a/b", []Segment{{foo, 0, 3}}}, {"e", nil}}, Dirs: []string{"a", "d/e"}}, ""},
		{"bad path", Manifest{Files: []File{{"./a", nil}}}, `"./a" has a "." component`},
		{"duplicate", Manifest{Files: []File{{"a", nil}, {"a", nil}}}, "listed twice"},
		{"file and dir", Manifest{Files: []File{{"a", nil}, {"a/b", nil}}}, `"a" is both a file and a directory`},
		{"dir over file", Manifest{Files: []File{{"a", nil}}, Dirs: []string{"a"}}, "both a file and a directory"},
		{"bad dir", Manifest{Dirs: []string{"a/"}}, `directory "a/" ends with "/"`},
		{"no size", Manifest{Files: []File{{"a", []Segment{{noSize, 0, 3}}}}}, "has no size"},
		{"bad hash", Manifest{Files: []File{{"a", []Segment{{locator.Locator{Hash: "xyz", Size: 3}, 0, 3}}}}}, "invalid locator"},
		{"outside", Manifest{Files: []File{{"a", []Segment{{foo, 1, 3}}}}}, "outside block"},
		{"negative", Manifest{Files: []File{{"a", []Segment{{foo, -1, 1}}}}}, "outside block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate succeeded, want error containing %q", tt.want)
			case tt.want != "" && !contains(err.Error(), tt.want):
				t.Errorf("Validate: %v, want error containing %q", err, tt.want)
			}
		})
	}
}
