package keepclient_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// failingWriterAt fails every write.
type failingWriterAt struct{ err error }

func (w failingWriterAt) WriteAt([]byte, int64) (int, error) { return 0, w.err }

// TestGetTo writes blocks into a file at their offsets as they arrive:
// past a corrupt copy (whose bytes are overwritten by the good one), in
// pieces larger and smaller than a read, and stops at once, without
// trying other servers, when the file cannot be written.
func TestGetTo(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := newClient(t, c)
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	rng := rand.NewChaCha8([32]byte{1})
	var want []byte
	for i, size := range []int{3<<20 + 17, 1000, 1 << 20} {
		data := make([]byte, size)
		rng.Read(data)
		loc := locator.New(data)
		order := c.ProbeOrder(loc.Hash)
		order[0].Store(data)
		order[1].Store(data)
		if i == 0 {
			order[0].SetCorrupt(true) // the first answer is bad
		}
		var reported int
		n, err := kc.GetTo(context.Background(), loc, f, int64(len(want)), func(n int) { reported += n })
		if err != nil || n != int64(size) {
			t.Fatalf("block %d: GetTo = %d, %v", i, n, err)
		}
		if reported < size {
			t.Errorf("block %d: progress %d of %d bytes", i, reported, size)
		}
		want = append(want, data...)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes (%v), equal %v", len(got), err, bytes.Equal(got, want))
	}

	data := []byte("cannot be written")
	loc := locator.New(data)
	for _, s := range c.ProbeOrder(loc.Hash) {
		s.Store(data)
	}
	before := len(getTargets(c))
	errDisk := errors.New("disk full")
	_, err = kc.GetTo(context.Background(), loc, failingWriterAt{errDisk}, 0, nil)
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "writing block") {
		t.Errorf("GetTo into a failing writer = %v", err)
	}
	if n := len(getTargets(c)) - before; n != 1 {
		t.Errorf("%d servers asked after a local write failure, want 1", n)
	}

	// Corrupt everywhere: a checksum error, as Get gives.
	for _, s := range c.ProbeOrder(loc.Hash) {
		s.SetCorrupt(true)
	}
	if _, err := kc.GetTo(context.Background(), loc, f, 0, nil); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("GetTo of a corrupt block = %v", err)
	}
}
