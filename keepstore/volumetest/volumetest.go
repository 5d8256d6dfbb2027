// Package volumetest is a conformance suite for keepstore.Volume
// implementations: every volume type runs the same tests, so the server
// can rely on the same behaviour from each.
//
//	func TestDirectory(t *testing.T) {
//		volumetest.Run(t, func(t *testing.T, o volumetest.Options) keepstore.Volume { ... })
//	}
package volumetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
)

// Options are the settings the suite needs a new volume to have.
type Options struct {
	// ReadOnly asks for a volume refusing writes.
	ReadOnly bool
	// Capacity asks for a limit on stored bytes; 0 means none.
	Capacity int64
}

// NewFunc returns a new, empty volume with the given options, cleaned
// up when t ends.
type NewFunc func(t *testing.T, opts Options) keepstore.Volume

// Run runs the conformance tests as subtests of t.
func Run(t *testing.T, newVolume NewFunc) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewFunc)
	}{
		{"PutOpenStat", testPutOpenStat},
		{"EmptyBlock", testEmptyBlock},
		{"Missing", testMissing},
		{"PutTwice", testPutTwice},
		{"PutReaderError", testPutReaderError},
		{"PutWrongSize", testPutWrongSize},
		{"PutCancelled", testPutCancelled},
		{"PutReadsToEOF", testPutReadsToEOF},
		{"Touch", testTouch},
		{"Index", testIndex},
		{"IndexStops", testIndexStops},
		{"Capacity", testCapacity},
		{"ReadOnly", testReadOnly},
		{"Concurrent", testConcurrent},
		{"Trash", testTrash},
		{"Untrash", testUntrash},
		{"EmptyTrash", testEmptyTrash},
		{"TrashAtOnce", testTrashAtOnce},
		{"TrashReadOnly", testTrashReadOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newVolume) })
	}
}

// Block is test data with its hash.
type Block struct {
	// Hash is the MD5 of Data, in hex.
	Hash string
	// Data is the block's content.
	Data []byte
}

// NewBlock returns a block of size bytes derived from seed.
func NewBlock(seed string, size int) Block {
	data := make([]byte, size)
	for i := range data {
		data[i] = seed[i%len(seed)] + byte(i/len(seed))
	}
	sum := md5.Sum(data)
	return Block{hex.EncodeToString(sum[:]), data}
}

// CountingReader counts Read calls, to check that a refusal reads
// nothing.
type CountingReader struct {
	// R is the reader whose content is passed through.
	R     io.Reader
	mu    sync.Mutex
	reads int
	eof   bool
}

// Read implements io.Reader.
func (c *CountingReader) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	n, err := c.R.Read(p)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// Reads returns the number of Read calls so far.
func (c *CountingReader) Reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// SawEOF reports whether a Read returned io.EOF.
func (c *CountingReader) SawEOF() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eof
}

func put(t *testing.T, v keepstore.Volume, b Block) {
	t.Helper()
	if err := v.Put(context.Background(), b.Hash, bytes.NewReader(b.Data), int64(len(b.Data))); err != nil {
		t.Fatalf("Put(%s): %v", b.Hash, err)
	}
}

// Read returns the whole block hash of v, failing t (but going on) if
// it is not as long as Open said.
func Read(t *testing.T, v keepstore.Volume, hash string) ([]byte, error) {
	t.Helper()
	rc, size, err := v.Open(context.Background(), hash)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err == nil && int64(len(data)) != size {
		t.Errorf("Open(%s) size %d, read %d bytes", hash, size, len(data))
	}
	return data, err
}

func usage(t *testing.T, v keepstore.Volume) keepstore.Usage {
	t.Helper()
	u, err := v.Usage(context.Background())
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	return u
}

func wantAbsent(t *testing.T, v keepstore.Volume, hash string) {
	t.Helper()
	ctx := context.Background()
	if _, err := v.Stat(ctx, hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Stat(%s) = %v, want ErrNotFound", hash, err)
	}
	if _, _, err := v.Open(ctx, hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Open(%s) = %v, want ErrNotFound", hash, err)
	}
	v.Index(ctx, "", func(b keepstore.BlockInfo) error {
		if b.Hash == hash {
			t.Errorf("Index lists %s", hash)
		}
		return nil
	})
}

func testPutOpenStat(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("put", 10000)
	before := time.Now().Add(-2 * time.Second)
	put(t, v, b)
	got, err := Read(t, v, b.Hash)
	if err != nil || !bytes.Equal(got, b.Data) {
		t.Fatalf("Open after Put: %d bytes, %v", len(got), err)
	}
	info, err := v.Stat(context.Background(), b.Hash)
	if err != nil || info.Hash != b.Hash || info.Size != int64(len(b.Data)) {
		t.Errorf("Stat = %+v, %v", info, err)
	}
	if info.Mtime.Before(before) || info.Mtime.After(time.Now().Add(2*time.Second)) {
		t.Errorf("Stat mtime %v, want about now", info.Mtime)
	}
	if u := usage(t, v); u.UsedBytes != int64(len(b.Data)) || u.Blocks != 1 {
		t.Errorf("Usage = %+v, want 1 block of %d bytes", u, len(b.Data))
	}
}

func testEmptyBlock(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("x", 0)
	put(t, v, b)
	if got, err := Read(t, v, b.Hash); err != nil || len(got) != 0 {
		t.Errorf("Open empty block: %q, %v", got, err)
	}
}

func testMissing(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("missing", 10)
	wantAbsent(t, v, b.Hash)
	if err := v.Touch(context.Background(), b.Hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Touch missing = %v, want ErrNotFound", err)
	}
}

func testPutTwice(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("twice", 100)
	put(t, v, b)
	put(t, v, b)
	if u := usage(t, v); u.UsedBytes != 100 || u.Blocks != 1 {
		t.Errorf("Usage after two Puts of one block = %+v", u)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func testPutReaderError(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("fail", 5000)
	boom := errors.New("boom")
	err := v.Put(context.Background(), b.Hash, &failingReader{b.Data[:2000], boom}, int64(len(b.Data)))
	if !errors.Is(err, boom) {
		t.Errorf("Put with failing reader = %v, want it to wrap the reader's error", err)
	}
	wantAbsent(t, v, b.Hash)
	if u := usage(t, v); u.UsedBytes != 0 || u.Blocks != 0 {
		t.Errorf("Usage after failed Put = %+v", u)
	}
}

func testPutWrongSize(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("size", 100)
	for _, size := range []int64{99, 101} {
		if err := v.Put(context.Background(), b.Hash, bytes.NewReader(b.Data), size); err == nil {
			t.Errorf("Put of 100 bytes with size %d succeeded", size)
		}
		wantAbsent(t, v, b.Hash)
	}
	// Unknown size is fine.
	if err := v.Put(context.Background(), b.Hash, bytes.NewReader(b.Data), -1); err != nil {
		t.Errorf("Put with size -1: %v", err)
	}
}

func testPutCancelled(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("cancel", 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.Put(ctx, b.Hash, bytes.NewReader(b.Data), 100); err == nil {
		t.Error("Put with cancelled context succeeded")
	}
	wantAbsent(t, v, b.Hash)
}

func testPutReadsToEOF(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("eof", 100)
	r := &CountingReader{R: bytes.NewReader(b.Data)}
	if err := v.Put(context.Background(), b.Hash, r, 100); err != nil {
		t.Fatal(err)
	}
	if !r.SawEOF() {
		t.Error("Put did not read to io.EOF, so a caller cannot veto the block at the end")
	}
}

func testTouch(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	b := NewBlock("touch", 10)
	put(t, v, b)
	before := time.Now().Add(-2 * time.Second)
	if err := v.Touch(context.Background(), b.Hash); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	info, err := v.Stat(context.Background(), b.Hash)
	if err != nil || info.Mtime.Before(before) {
		t.Errorf("Stat after Touch = %+v, %v", info, err)
	}
}

func testIndex(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	var blocks []Block
	for i := range 20 {
		b := NewBlock(fmt.Sprint("index", i), 10+i)
		put(t, v, b)
		blocks = append(blocks, b)
	}
	ctx := context.Background()
	for _, prefix := range []string{"", blocks[0].Hash[:1], blocks[0].Hash[:3], blocks[0].Hash[:5], blocks[0].Hash} {
		var got []keepstore.BlockInfo
		if err := v.Index(ctx, prefix, func(b keepstore.BlockInfo) error {
			got = append(got, b)
			return nil
		}); err != nil {
			t.Fatalf("Index(%q): %v", prefix, err)
		}
		want := map[string]int{}
		for _, b := range blocks {
			if len(b.Hash) >= len(prefix) && b.Hash[:len(prefix)] == prefix {
				want[b.Hash] = len(b.Data)
			}
		}
		if len(got) != len(want) {
			t.Errorf("Index(%q) listed %d blocks, want %d", prefix, len(got), len(want))
		}
		for i, b := range got {
			if size, ok := want[b.Hash]; !ok || int64(size) != b.Size || b.Mtime.IsZero() {
				t.Errorf("Index(%q) listed %+v", prefix, b)
			}
			if i > 0 && got[i-1].Hash >= b.Hash {
				t.Errorf("Index(%q) not in ascending order: %s then %s", prefix, got[i-1].Hash, b.Hash)
			}
		}
	}
}

func testIndexStops(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	put(t, v, NewBlock("a", 1))
	put(t, v, NewBlock("b", 1))
	stop := errors.New("stop")
	calls := 0
	err := v.Index(context.Background(), "", func(keepstore.BlockInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Index with failing fn: err %v after %d calls, want stop after 1", err, calls)
	}
}

func testCapacity(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{Capacity: 150})
	put(t, v, NewBlock("first", 100))
	b := NewBlock("second", 100)
	r := &CountingReader{R: bytes.NewReader(b.Data)}
	if err := v.Put(context.Background(), b.Hash, r, 100); !errors.Is(err, keepstore.ErrFull) {
		t.Errorf("Put beyond capacity = %v, want ErrFull", err)
	}
	if r.Reads() != 0 {
		t.Errorf("Put beyond capacity read the body %d times before refusing", r.Reads())
	}
	wantAbsent(t, v, b.Hash)
	put(t, v, NewBlock("third", 50))
	if u := usage(t, v); u.UsedBytes != 150 || u.CapacityBytes != 150 {
		t.Errorf("Usage = %+v", u)
	}
}

func testReadOnly(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{ReadOnly: true})
	b := NewBlock("ro", 10)
	r := &CountingReader{R: bytes.NewReader(b.Data)}
	if err := v.Put(context.Background(), b.Hash, r, 10); !errors.Is(err, keepstore.ErrReadOnly) {
		t.Errorf("Put on read-only volume = %v, want ErrReadOnly", err)
	}
	if r.Reads() != 0 {
		t.Errorf("Put on read-only volume read the body %d times", r.Reads())
	}
	if err := v.Touch(context.Background(), b.Hash); !errors.Is(err, keepstore.ErrReadOnly) && !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Touch on read-only volume = %v", err)
	}
	wantAbsent(t, v, b.Hash)
}

func testConcurrent(t *testing.T, newVolume NewFunc) {
	v := newVolume(t, Options{})
	same := NewBlock("same", 3000)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- v.Put(context.Background(), same.Hash, bytes.NewReader(same.Data), int64(len(same.Data)))
		}()
		go func() {
			defer wg.Done()
			b := NewBlock(fmt.Sprint("concurrent", i), 1000)
			errs <- v.Put(context.Background(), b.Hash, bytes.NewReader(b.Data), int64(len(b.Data)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got, err := Read(t, v, same.Hash); err != nil || !bytes.Equal(got, same.Data) {
		t.Errorf("block written concurrently reads back wrong: %v", err)
	}
	if u := usage(t, v); u.Blocks != 9 || u.UsedBytes != 3000+8*1000 {
		t.Errorf("Usage = %+v, want 9 blocks, %d bytes", u, 3000+8*1000)
	}
}
