package keepfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
)

const testBlock = 1 << 16 // small blocks: many of them in small files

// testFiles returns files of several shapes: empty, small ones sharing
// a block, ones spanning blocks, in nested directories, and two empty
// directories.
func testFiles() (map[string][]byte, []string) {
	files := map[string][]byte{
		"empty":              {},
		"a.txt":              []byte("hello\n"),
		"dir/b.bin":          randomBytes(1, 10*testBlock+17),
		"dir/sub/c.bin":      randomBytes(2, testBlock),
		"dir/sub/d e\\f.txt": []byte("odd name"),
	}
	for i := range 20 {
		files[fmt.Sprintf("many/f%02d", i)] = randomBytes(uint64(100+i), 100*i)
	}
	return files, []string{"emptydir", "dir/sub/emptytoo"}
}

// fixture is a cluster holding testFiles twice each, and their tree.
type fixture struct {
	c     *keeptest.Cluster
	files map[string][]byte
	dirs  []string
	m     *manifest.Manifest
	tree  *Tree
	log   *syncBuffer
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{c: keeptest.NewCluster(t, 3), log: &syncBuffer{}}
	f.files, f.dirs = testFiles()
	f.m = packFiles(t, f.c, f.files, f.dirs, testBlock, 2)
	var b TreeBuilder
	if err := b.Add("", f.m); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.tree, err = b.Tree(); err != nil {
		t.Fatal(err)
	}
	return f
}

// mount mounts the fixture's tree with opts, the client and logger set.
func (f *fixture) mount(t *testing.T, opts Options, stallTimeout bool) (*Mount, string) {
	opts.Client = newClient(t, f.c, stallTimeout)
	opts.Logger = slog.New(slog.NewTextHandler(f.log, nil))
	return mountTree(t, f.tree, opts)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReadEveryFile(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{}, false)
	checkFiles(t, dir, f.files, f.dirs)
	got, err := os.ReadFile(filepath.Join(dir, "dir/b.bin"))
	if err != nil || !bytes.Equal(got, f.files["dir/b.bin"]) {
		t.Errorf("second read: %v", err)
	}
}

func TestMetadataMakesNoRequests(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{}, false)
	var files int
	var bytes int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files++
			bytes += info.Size()
			rel, _ := filepath.Rel(dir, p)
			if want := int64(len(f.files[rel])); info.Size() != want || info.Mode() != 0o444 {
				t.Errorf("%s: size %d mode %v, want %d -r--r--r--", rel, info.Size(), info.Mode(), want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if files != len(f.files) {
		t.Errorf("walked %d files, want %d", files, len(f.files))
	}
	if reqs := f.c.Requests(); len(reqs) != 0 {
		t.Errorf("listing and stat made %d requests, the first %s %s", len(reqs), reqs[0].Method, reqs[0].Path)
	}
	// Opening a file fetches nothing until it is read.
	fh, err := os.Open(filepath.Join(dir, "dir/b.bin"))
	if err != nil {
		t.Fatal(err)
	}
	fh.Close()
	if reqs := f.c.Requests(); len(reqs) != 0 {
		t.Errorf("open made %d requests", len(reqs))
	}
}

func TestNamesAndErrors(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{}, false)
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"missing file", func() error { _, err := os.Stat(filepath.Join(dir, "nope")); return err }, fs.ErrNotExist},
		{"write", func() error {
			_, err := os.OpenFile(filepath.Join(dir, "a.txt"), os.O_WRONLY, 0)
			return err
		}, syscall.EROFS},
		{"create", func() error { _, err := os.Create(filepath.Join(dir, "new")); return err }, syscall.EROFS},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(dir, "newdir"), 0o755) }, syscall.EROFS},
		{"remove", func() error { return os.Remove(filepath.Join(dir, "a.txt")) }, syscall.EROFS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, " "), "a.txt dir empty emptydir many"; got != want {
		t.Errorf("root lists %q, want %q", got, want)
	}
}

func TestRandomPreads(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{CacheSize: 3 * testBlock}, false)
	want := f.files["dir/b.bin"]
	fh, err := os.Open(filepath.Join(dir, "dir/b.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		off := r.IntN(len(want) + 10)
		buf := make([]byte, r.IntN(3*testBlock))
		n, err := fh.ReadAt(buf, int64(off))
		end := min(off+len(buf), len(want))
		wantN := max(end-off, 0)
		if n != wantN || (err != nil && n == len(buf)) || !bytes.Equal(buf[:n], want[min(off, len(want)):end]) {
			t.Fatalf("ReadAt(%d bytes at %d): %d, %v; want %d bytes", len(buf), off, n, err, wantN)
		}
	}
}

func TestCorruptCopySkipped(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{}, false)
	b := f.tree.blocks[0]
	first := f.c.ProbeOrder(b.Hash)[0]
	first.SetCorrupt(true)
	checkFiles(t, dir, f.files, f.dirs)
	asked := false
	for _, r := range first.Requests() {
		asked = asked || strings.Contains(r.Path, b.Hash)
	}
	if !asked {
		t.Errorf("the corrupt server was not asked for %s", b.Hash)
	}
}

func TestServerStallsMidRead(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{Readahead: -1}, true)
	b := f.tree.blocks[f.tree.segs[f.tree.nodes[f.fileNode(t, "dir/b.bin")].first].block]
	first := f.c.ProbeOrder(b.Hash)[0]
	first.ScriptGet(keeptest.Response{Stall: true, StallAfter: 100})
	got, err := os.ReadFile(filepath.Join(dir, "dir/b.bin"))
	if err != nil || !bytes.Equal(got, f.files["dir/b.bin"]) {
		t.Fatalf("read with a server stalling mid-block: %v", err)
	}
	if first.Stalled() == 0 && len(first.Requests()) == 0 {
		t.Errorf("the stalling server was not asked")
	}
}

// fileNode returns the node of the file at path.
func (f *fixture) fileNode(t *testing.T, path string) uint32 {
	t.Helper()
	i := uint32(0)
	for name := range strings.SplitSeq(path, "/") {
		var ok bool
		if i, ok = f.tree.lookup(i, name); !ok {
			t.Fatalf("no %s in the tree", path)
		}
	}
	return i
}

func TestServerKilledBeforeRead(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{}, false)
	f.c.Server(0).Kill()
	checkFiles(t, dir, f.files, f.dirs)
}

func TestUnreadableBlockIsEIO(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{}, false)
	b := f.tree.blocks[0] // holds a.txt
	for _, s := range f.c.Servers() {
		s.Delete(b.Hash)
	}
	_, err := os.ReadFile(filepath.Join(dir, "a.txt"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading a file of a lost block: %v, want EIO", err)
	}
	log := f.log.String()
	if n := strings.Count(log, "\n"); n != 1 {
		t.Errorf("%d log lines, want 1:\n%s", n, log)
	}
	for _, want := range []string{b.Bare().String(), f.c.Server(0).URL(), f.c.Server(2).URL()} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestExternalUnmount(t *testing.T) {
	f := newFixture(t)
	m, dir := f.mount(t, Options{}, false)
	if err := syscall.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	<-m.Done()
	if mounted(t, dir) {
		t.Errorf("%s still mounted", dir)
	}
}

func TestCacheBound(t *testing.T) {
	f := newFixture(t)
	const limit = 2 * testBlock
	m, dir := f.mount(t, Options{CacheSize: limit, Readahead: 2}, false)
	checkFiles(t, dir, f.files, f.dirs)
	if got := m.cache.usage(); got > limit {
		t.Errorf("cache holds %d bytes after the reads, more than its %d", got, limit)
	}
}

func TestDiskCache(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	opts := Options{DiskCache: cache, DiskCacheSize: 1 << 30}
	remount := func() string {
		m, dir := f.mount(t, opts, false)
		checkFiles(t, dir, f.files, f.dirs)
		if err := m.Unmount(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	remount()
	before := len(f.c.Requests())
	remount()
	if n := len(f.c.Requests()) - before; n != 0 {
		t.Errorf("the second mount made %d requests; want all blocks from the disk cache", n)
	}
	// A damaged copy on disk is found, removed and read again.
	b := f.tree.blocks[1]
	p := filepath.Join(cache, b.Hash[:3], b.Hash)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[0] ^= 1
	os.WriteFile(p, data, 0o600)
	before = len(f.c.Requests())
	remount()
	if n := len(f.c.Requests()) - before; n != 1 {
		t.Errorf("after damaging one cached block, %d requests; want 1", n)
	}
	if !strings.Contains(f.log.String(), "disk cache: block unusable") {
		t.Errorf("no log line for the damaged block:\n%s", f.log.String())
	}
	if back, err := os.ReadFile(p); err != nil || md5hex(back) != b.Hash {
		t.Errorf("the damaged block was not replaced: %v", err)
	}
}

func TestConcurrentReadersShareFetches(t *testing.T) {
	f := newFixture(t)
	_, dir := f.mount(t, Options{}, false)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { checkFiles(t, dir, f.files, f.dirs) })
	}
	wg.Wait()
	gets := map[string]int{}
	for _, r := range f.c.Requests() {
		gets[r.Path]++
	}
	for p, n := range gets {
		if n > 1 {
			t.Errorf("%s fetched %d times", p, n)
		}
	}
	_ = context.Background
}
