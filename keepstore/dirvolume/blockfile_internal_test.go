package dirvolume

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"testing/iotest"
)

// writeRecorder records the size of every write.
type writeRecorder struct {
	bytes.Buffer
	sizes []int
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.Buffer.Write(p)
}

// TestCopyChunks copies bodies of awkward sizes arriving a byte at a
// time and then in reads of odd sizes, and checks that the copy is
// exact, every byte was claimed once as it arrived, and every write but
// the last was a whole chunk.
func TestCopyChunks(t *testing.T) {
	const chunk = 64 << 10
	for _, size := range []int{0, 1, 4095, chunk - 1, chunk, chunk + 1, 3*chunk + 12345} {
		data := make([]byte, size)
		rand.NewChaCha8([32]byte{byte(size)}).Read(data)
		head := min(size, 10)
		r := io.MultiReader(iotest.OneByteReader(bytes.NewReader(data[:head])), iotest.HalfReader(bytes.NewReader(data[head:])))
		var dst writeRecorder
		var claimed int64
		n, err := copyChunks(&dst, r, make([]byte, chunk), func(n int64) error { claimed += n; return nil })
		switch {
		case err != nil:
			t.Errorf("size %d: %v", size, err)
		case n != int64(size) || claimed != int64(size) || !bytes.Equal(dst.Bytes(), data):
			t.Errorf("size %d: wrote %d, claimed %d, copy equal %v", size, n, claimed, bytes.Equal(dst.Bytes(), data))
		}
		for i, s := range dst.sizes {
			if i < len(dst.sizes)-1 && s != chunk || s == 0 {
				t.Errorf("size %d: writes %v, want whole chunks then the rest", size, dst.sizes)
				break
			}
		}
	}
}

// TestCopyChunksFailures: a failing claim, read or write stops the copy
// with its error, and a refused claim writes nothing of the refused
// read.
func TestCopyChunksFailures(t *testing.T) {
	errRoom, errBody := errors.New("no room"), errors.New("client gone")
	body := func() io.Reader { return bytes.NewReader(make([]byte, 5000)) }
	for _, tc := range []struct {
		name  string
		r     io.Reader
		dst   io.Writer
		claim func(int64) error
		want  error
	}{
		{"claim refused", body(), io.Discard, func(int64) error { return errRoom }, errRoom},
		{"body fails", io.MultiReader(body(), iotest.ErrReader(errBody)), io.Discard, func(int64) error { return nil }, errBody},
		{"write fails", body(), failingWriter{errRoom}, func(int64) error { return nil }, errRoom},
	} {
		n, err := copyChunks(tc.dst, tc.r, make([]byte, 4096), tc.claim)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: copyChunks = %d, %v, want %v", tc.name, n, err, tc.want)
		}
		if tc.name == "claim refused" && n != 0 {
			t.Errorf("%s: wrote %d bytes", tc.name, n)
		}
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// TestWritebackFile: writing through writebackFile (which starts each
// chunk's writeback as it goes) leaves exactly the bytes written, at
// their offsets.
func TestWritebackFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "block")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := make([]byte, 3<<20+5)
	rand.NewChaCha8([32]byte{3}).Read(data)
	w := &writebackFile{f: f}
	if n, err := copyChunks(w, bytes.NewReader(data), make([]byte, 1<<20), func(int64) error { return nil }); err != nil || n != int64(len(data)) {
		t.Fatalf("copyChunks = %d, %v", n, err)
	}
	if err := syncData(f); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, data) || w.off != int64(len(data)) {
		t.Errorf("file holds %d bytes (%v), offset %d; want the %d written", len(got), err, w.off, len(data))
	}
}
