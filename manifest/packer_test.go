package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/keepproject/keep/locator"
)

// packAll packs files (path -> content, in order) with the given block
// size, storing blocks in store, and returns the manifest and the sizes of
// the blocks in order.
func packAll(t *testing.T, blockSize int, store *memStore, paths []string, content map[string][]byte) (*Manifest, []int) {
	t.Helper()
	var locs []locator.Locator
	var sizes []int
	var p *Packer
	p = NewPacker(blockSize, func(ctx context.Context, index int, data []byte) error {
		if index != len(locs) {
			t.Errorf("flush got index %d, want %d", index, len(locs))
		}
		if cap(data) != blockSize {
			t.Errorf("block %d has capacity %d, want %d", index, cap(data), blockSize)
		}
		locs = append(locs, store.put(data))
		sizes = append(sizes, len(data))
		p.Release(data)
		return nil
	})
	ctx := context.Background()
	for _, path := range paths {
		// OneByteReader makes AddFile cope with short reads.
		if err := p.AddFile(ctx, path, iotest.OneByteReader(bytes.NewReader(content[path]))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := p.Manifest(locs)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m, sizes
}

// checkContent reads every file of m back from store and compares it with
// content.
func checkContent(t *testing.T, m *Manifest, store *memStore, content map[string][]byte) {
	t.Helper()
	if len(m.Files) != len(content) {
		t.Errorf("manifest has %d files, want %d", len(m.Files), len(content))
	}
	for _, f := range m.Files {
		want, ok := content[f.Path]
		if !ok {
			t.Errorf("unexpected file %q", f.Path)
			continue
		}
		if f.Size() != int64(len(want)) {
			t.Errorf("%q: Size %d, want %d", f.Path, f.Size(), len(want))
		}
		var buf bytes.Buffer
		if err := WriteFile(context.Background(), f, store.fetch, &buf); err != nil {
			t.Errorf("WriteFile(%q): %v", f.Path, err)
			continue
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%q: read back %q, want %q", f.Path, buf.Bytes(), want)
		}
	}
}

func TestPacker(t *testing.T) {
	const blockSize = 10
	many := make([]int, 40)
	for i := range many {
		many[i] = i % 4
	}
	tests := []struct {
		name  string
		sizes []int
	}{
		{"nothing", nil},
		{"only empty files", []int{0, 0}},
		{"small files share blocks", many},
		{"exactly one block", []int{10}},
		{"file ending on a boundary", []int{4, 6, 3}},
		{"files larger than a block", []int{25, 1, 31, 0, 10}},
		{"empty files between", []int{3, 0, 7, 0, 0, 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := make(map[string][]byte)
			var paths []string
			total := 0
			for i, n := range tt.sizes {
				path := fmt.Sprintf("d%d/f%02d", i%3, i)
				if i%5 == 0 {
					path = fmt.Sprintf("top%02d", i)
				}
				data := make([]byte, n)
				for j := range data {
					data[j] = byte('a' + (i+j)%26)
				}
				paths = append(paths, path)
				content[path] = data
				total += n
			}
			store := newMemStore()
			m, sizes := packAll(t, blockSize, store, paths, content)

			wantBlocks := (total + blockSize - 1) / blockSize
			if len(sizes) != wantBlocks {
				t.Errorf("%d blocks for %d bytes, want %d", len(sizes), total, wantBlocks)
			}
			for i, n := range sizes {
				if n == 0 || n > blockSize || (i < len(sizes)-1 && n != blockSize) {
					t.Errorf("block %d has %d bytes; blocks: %v", i, n, sizes)
				}
			}
			for i, f := range m.Files {
				if f.Path != paths[i] {
					t.Errorf("file %d is %q, want %q (order of AddFile)", i, f.Path, paths[i])
				}
			}
			checkContent(t, m, store, content)

			// The normalized text describes the same files.
			m2, err := Parse(m.Text())
			if err != nil {
				t.Fatalf("Parse(Text): %v", err)
			}
			checkContent(t, m2, store, content)
			if m2.Text() != m.Text() {
				t.Errorf("Text not stable:\n%q\n%q", m.Text(), m2.Text())
			}
		})
	}
}

func TestPackerSegmentsAcrossBlocks(t *testing.T) {
	store := newMemStore()
	content := map[string][]byte{"a": []byte("0123456"), "b": []byte("789abcdefghijklmnopq"), "c": []byte("rs")}
	m, sizes := packAll(t, 10, store, []string{"a", "b", "c"}, content)
	if len(sizes) != 3 {
		t.Fatalf("blocks %v, want 3", sizes)
	}
	blocks := m.Blocks()
	want := []File{
		{"a", []Segment{{blocks[0], 0, 7}}},
		{"b", []Segment{{blocks[0], 7, 3}, {blocks[1], 0, 10}, {blocks[2], 0, 7}}},
		{"c", []Segment{{blocks[2], 7, 2}}},
	}
	if !equalFiles(m.Files, want, false) {
		t.Errorf("Files:\n got %v\nwant %v", m.Files, want)
	}
	wantText := ". " + blocks[0].String() + " " + blocks[1].String() + " " + blocks[2].String() + " 0:7:a 7:20:b 27:2:c\n"
	if got := m.Text(); got != wantText {
		t.Errorf("Text:\n got %q\nwant %q", got, wantText)
	}
}

// TestPackerManySmallFiles checks the case Packer exists for: 20,000 files
// of 4 KiB fill two 64 MiB blocks, not 20,000.
func TestPackerManySmallFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("packs 80 MB")
	}
	file := bytes.Repeat([]byte("0123456789abcdef"), 256)
	var locs []locator.Locator
	var p *Packer
	p = NewPacker(0, func(ctx context.Context, index int, data []byte) error {
		locs = append(locs, locator.New(data))
		p.Release(data)
		return nil
	})
	ctx := context.Background()
	for i := range 20000 {
		if err := p.AddFile(ctx, fmt.Sprintf("dir/f%05d", i), bytes.NewReader(file)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := p.Manifest(locs)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.Blocks()); n != 2 {
		t.Errorf("%d blocks, want 2", n)
	}
	text := m.Text()
	if n := strings.Count(text, "\n"); n != 1 {
		t.Errorf("%d streams, want 1", n)
	}
	if !strings.HasPrefix(text, "./dir "+locs[0].String()+" "+locs[1].String()+" 0:4096:f00000 4096:4096:f00001 ") {
		t.Errorf("text starts %q", text[:200])
	}
}

// TestPackerPipeline uploads blocks from worker goroutines that release
// buffers when done, and checks that buffers are reused rather than
// allocated per block.
func TestPackerPipeline(t *testing.T) {
	const (
		blockSize = 16
		workers   = 2
	)
	store := newMemStore()
	type job struct {
		index int
		data  []byte
	}
	jobs := make(chan job)
	var (
		mu      sync.Mutex
		locs    = map[int]locator.Locator{}
		buffers = map[*byte]bool{}
	)
	p := NewPacker(blockSize, func(ctx context.Context, index int, data []byte) error {
		mu.Lock()
		buffers[&data[:1][0]] = true
		mu.Unlock()
		select {
		case jobs <- job{index, data}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				l := store.put(j.data)
				p.Release(j.data)
				mu.Lock()
				locs[j.index] = l
				mu.Unlock()
			}
		})
	}
	content := map[string][]byte{}
	var paths []string
	for i := range 200 {
		path := fmt.Sprintf("f%03d", i)
		content[path] = []byte(strings.Repeat(string(rune('a'+i%26)), i%37))
		paths = append(paths, path)
	}
	ctx := context.Background()
	for _, path := range paths {
		if err := p.AddFile(ctx, path, bytes.NewReader(content[path])); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	close(jobs)
	wg.Wait()

	list := make([]locator.Locator, len(locs))
	for i, l := range locs {
		list[i] = l
	}
	m, err := p.Manifest(list)
	if err != nil {
		t.Fatal(err)
	}
	checkContent(t, m, store, content)
	// Each worker holds at most one block, and flush one more while it
	// waits for a worker; the Packer fills a new buffer only after flush
	// returned.
	if n, max := len(buffers), workers+1; n > max {
		t.Errorf("%d distinct buffers for %d blocks, want at most %d", n, len(locs), max)
	}
	if len(locs) < 100 {
		t.Errorf("only %d blocks; the test wants many", len(locs))
	}
}

func TestPackerDirs(t *testing.T) {
	p := NewPacker(10, func(ctx context.Context, index int, data []byte) error { return nil })
	ctx := context.Background()
	for _, d := range []string{"empty", "a/b", "a", "empty"} {
		if err := p.AddDir(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.AddFile(ctx, "a/f", strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := p.Manifest(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "./a " + emptyLoc + " 0:0:f\n./a/b " + emptyLoc + " 0:0:\\056\n./empty " + emptyLoc + " 0:0:\\056\n"
	if got := m.Text(); got != want {
		t.Errorf("Text:\n got %q\nwant %q", got, want)
	}
}

func TestPackerRejectsPaths(t *testing.T) {
	tests := []struct {
		name  string
		setup []string // files added first; a trailing "/" means AddDir
		path  string
		dir   bool
		want  string
	}{
		{"leading ./", nil, "./a", false, `has a "." component`},
		{"empty", nil, "", false, "is empty"},
		{"absolute", nil, "/a", false, `starts with "/"`},
		{"dot dot", nil, "a/../b", false, `".." component`},
		{"double slash", nil, "a//b", false, `contains "//"`},
		{"duplicate", []string{"a"}, "a", false, "added twice"},
		{"file over directory", []string{"a/b"}, "a", false, "both a file and a directory"},
		{"file under file", []string{"a"}, "a/b", false, "both a file and a directory"},
		{"file over explicit dir", []string{"a/"}, "a", false, "both a file and a directory"},
		{"dir over file", []string{"a"}, "a", true, "both a file and a directory"},
		{"dir under file", []string{"a"}, "a/b", true, "both a file and a directory"},
		{"bad dir", nil, "a/", true, `ends with "/"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPacker(10, func(ctx context.Context, index int, data []byte) error { return nil })
			ctx := context.Background()
			for _, s := range tt.setup {
				var err error
				if d, ok := strings.CutSuffix(s, "/"); ok {
					err = p.AddDir(d)
				} else {
					err = p.AddFile(ctx, s, strings.NewReader("xy"))
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var err error
			if tt.dir {
				err = p.AddDir(tt.path)
			} else {
				err = p.AddFile(ctx, tt.path, strings.NewReader("data"))
			}
			if err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
			// The Packer is still usable.
			if err := p.AddFile(ctx, "ok", strings.NewReader("abc")); err != nil {
				t.Fatalf("AddFile after rejected path: %v", err)
			}
		})
	}
}

func TestPackerFailures(t *testing.T) {
	errRead := errors.New("disk on fire")
	errFlush := errors.New("upload failed")
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	tests := []struct {
		name  string
		flush error
		ctx   context.Context
		r     io.Reader
		want  error
	}{
		{"read error", nil, ctx, io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(errRead)), errRead},
		{"flush error", errFlush, ctx, strings.NewReader(strings.Repeat("x", 25)), errFlush},
		{"canceled", nil, canceled, strings.NewReader("abc"), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPacker(10, func(ctx context.Context, index int, data []byte) error { return tt.flush })
			err := p.AddFile(tt.ctx, "f", tt.r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("AddFile: %v, want %v", err, tt.want)
			}
			// The failure sticks: the stream holds a partial file.
			if err := p.AddFile(ctx, "g", strings.NewReader("x")); !errors.Is(err, tt.want) {
				t.Errorf("second AddFile: %v, want %v", err, tt.want)
			}
			if err := p.Close(ctx); !errors.Is(err, tt.want) {
				t.Errorf("Close: %v, want %v", err, tt.want)
			}
			if _, err := p.Manifest(nil); !errors.Is(err, tt.want) {
				t.Errorf("Manifest: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPackerCloseFlushError(t *testing.T) {
	errFlush := errors.New("upload failed")
	p := NewPacker(10, func(ctx context.Context, index int, data []byte) error { return errFlush })
	ctx := context.Background()
	if err := p.AddFile(ctx, "f", strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); !errors.Is(err, errFlush) {
		t.Fatalf("Close: %v, want %v", err, errFlush)
	}
	if _, err := p.Manifest([]locator.Locator{locator.New([]byte("abc"))}); !errors.Is(err, errFlush) {
		t.Errorf("Manifest: %v, want %v", err, errFlush)
	}
}

func TestPackerManifestErrors(t *testing.T) {
	ctx := context.Background()
	newPacker := func(t *testing.T) *Packer {
		p := NewPacker(10, func(ctx context.Context, index int, data []byte) error { return nil })
		if err := p.AddFile(ctx, "f", strings.NewReader("abc")); err != nil {
			t.Fatal(err)
		}
		return p
	}
	abc := locator.New([]byte("abc"))

	t.Run("before Close", func(t *testing.T) {
		p := newPacker(t)
		if _, err := p.Manifest([]locator.Locator{abc}); err == nil || !contains(err.Error(), "before Close") {
			t.Errorf("Manifest: %v", err)
		}
	})
	t.Run("after Close", func(t *testing.T) {
		p := newPacker(t)
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(ctx); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := p.AddFile(ctx, "g", strings.NewReader("")); err == nil || !contains(err.Error(), "closed") {
			t.Errorf("AddFile after Close: %v", err)
		}
		if err := p.AddDir("d"); err == nil || !contains(err.Error(), "closed") {
			t.Errorf("AddDir after Close: %v", err)
		}
		for _, tc := range []struct {
			locs []locator.Locator
			want string
		}{
			{nil, "0 locators for 1 blocks"},
			{[]locator.Locator{abc, abc}, "2 locators for 1 blocks"},
			{[]locator.Locator{{Hash: abc.Hash, Size: 4}}, "has size 4, block has 3 bytes"},
			{[]locator.Locator{{Hash: "nothex", Size: 3}}, "invalid locator"},
		} {
			if _, err := p.Manifest(tc.locs); err == nil || !contains(err.Error(), tc.want) {
				t.Errorf("Manifest(%v): %v, want error containing %q", tc.locs, err, tc.want)
			}
		}
		// A locator without a size gets the block's; hints are kept.
		m, err := p.Manifest([]locator.Locator{{Hash: abc.Hash, Size: -1, Hints: []string{"K@zzzzz"}}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Text(), ". "+abc.String()+"+K@zzzzz 0:3:f\n"; got != want {
			t.Errorf("Text %q, want %q", got, want)
		}
	})
}

func TestNewPackerPanics(t *testing.T) {
	flush := func(ctx context.Context, index int, data []byte) error { return nil }
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"too big", func() { NewPacker(locator.MaxBlockSize+1, flush) }},
		{"nil flush", func() { NewPacker(10, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.f()
		})
	}
}
