package dirvolume_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/dirvolume"
	"github.com/keepproject/keep/keepstore/volumetest"
)

func TestDirectoryConformance(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(map[bool]string{false: "sync", true: "no-sync"}[noSync], func(t *testing.T) {
			volumetest.Run(t, func(t *testing.T, o volumetest.Options) keepstore.Volume {
				return openDir(t, t.TempDir(), dirvolume.Options{ReadOnly: o.ReadOnly, Capacity: o.Capacity, NoSync: noSync})
			})
		})
	}
}

func openDir(t *testing.T, root string, opts dirvolume.Options) *dirvolume.Directory {
	t.Helper()
	d, err := dirvolume.Open(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// listFiles returns the files in root's subdirectories, relative to
// root: the blocks, their trash and temporary files, without the lock
// and uuid files beside them.
func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	subs, _ := os.ReadDir(root)
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, sub.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, filepath.Join(sub.Name(), e.Name()))
		}
	}
	return out
}

func TestDirectoryLayout(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, dirvolume.Options{})
	b := volumetest.NewBlock("layout", 1000)
	if err := d.Put(context.Background(), b.Hash, bytes.NewReader(b.Data), 1000); err != nil {
		t.Fatal(err)
	}
	files := listFiles(t, root)
	want := filepath.Join(b.Hash[:3], b.Hash)
	if len(files) != 1 || files[0] != want {
		t.Fatalf("files = %v, want [%s]", files, want)
	}
	got, _ := os.ReadFile(filepath.Join(root, want))
	if !bytes.Equal(got, b.Data) {
		t.Error("block file content differs")
	}
}

// TestDirectoryArvadosVolume serves a directory laid out by Arvados
// keepstore, with the kinds of stray files found in one.
func TestDirectoryArvadosVolume(t *testing.T) {
	root := t.TempDir()
	b1 := volumetest.NewBlock("one", 100)
	b2 := volumetest.NewBlock("two", 200)
	write := func(rel string, data []byte, mtime time.Time) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, mtime, mtime)
	}
	old := time.Now().Add(-48 * time.Hour)
	write(filepath.Join(b1.Hash[:3], b1.Hash), b1.Data, old)
	write(filepath.Join(b2.Hash[:3], b2.Hash), b2.Data, old)
	write(filepath.Join(b1.Hash[:3], b1.Hash+".trash.1700000000"), b1.Data, old)
	write(filepath.Join(b1.Hash[:3], "tmp"+b1.Hash+"-old"), b1.Data, old)
	write(filepath.Join(b1.Hash[:3], "tmp"+b1.Hash+"-new"), b1.Data, time.Now())
	write(filepath.Join("fff", b1.Hash), b1.Data, old) // wrong shard
	write("README", []byte("hi"), old)

	d := openDir(t, root, dirvolume.Options{ReadOnly: false})
	<-d.ScanEnded()
	u, err := d.Usage(context.Background())
	if err != nil || u.Blocks != 2 || u.UsedBytes != 300 {
		t.Errorf("Usage = %+v, %v; want 2 blocks, 300 bytes", u, err)
	}
	if _, err := os.Stat(filepath.Join(root, b1.Hash[:3], "tmp"+b1.Hash+"-old")); !os.IsNotExist(err) {
		t.Error("stale temporary file not removed at open")
	}
	if _, err := os.Stat(filepath.Join(root, b1.Hash[:3], "tmp"+b1.Hash+"-new")); !os.IsNotExist(err) {
		t.Error("recent temporary file not removed at open, though the lock shows no write is in flight")
	}
	var listed []string
	d.Index(context.Background(), "", func(b keepstore.BlockInfo) error {
		listed = append(listed, b.Hash)
		if !b.Mtime.Equal(old) {
			t.Errorf("mtime of %s = %v, want %v", b.Hash, b.Mtime, old)
		}
		return nil
	})
	if len(listed) != 2 {
		t.Errorf("Index listed %v, want the two blocks only", listed)
	}
	rc, size, err := d.Open(context.Background(), b2.Hash)
	if err != nil || size != 200 {
		t.Fatalf("Open = %d, %v", size, err)
	}
	rc.Close()
	if _, _, err := d.Open(context.Background(), "../"+b1.Hash[3:]); err == nil {
		t.Error("Open accepted a path-like hash")
	}
}

// TestDirectoryInterruptedWrite stops a write half way, as a client
// hanging up would. While the block is being written only a temporary
// file exists, whose name is not a hash, so a crash at that moment leaves
// no partial block under a real name; the failed write leaves nothing.
func TestDirectoryInterruptedWrite(t *testing.T) {
	root := t.TempDir()
	d := openDir(t, root, dirvolume.Options{})
	b := volumetest.NewBlock("interrupted", 3<<20)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- d.Put(context.Background(), b.Hash, pr, int64(len(b.Data))) }()
	// Write returns once Put has read it all.
	if _, err := pw.Write(b.Data[:len(b.Data)/2]); err != nil {
		t.Fatal(err)
	}
	files := listFiles(t, root)
	if len(files) != 1 || !strings.HasPrefix(filepath.Base(files[0]), "tmp") || filepath.Dir(files[0]) != b.Hash[:3] {
		t.Errorf("files during the write = %v, want one temporary file in %s/", files, b.Hash[:3])
	}
	if _, err := d.Stat(context.Background(), b.Hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Stat during the write = %v, want ErrNotFound", err)
	}
	hangUp := errors.New("client hung up")
	pw.CloseWithError(hangUp)
	if err := <-done; !errors.Is(err, hangUp) {
		t.Errorf("interrupted Put = %v, want it to wrap the reader's error", err)
	}
	if files := listFiles(t, root); len(files) != 0 {
		t.Errorf("files after the interrupted write: %v", files)
	}
	if u, _ := d.Usage(context.Background()); u.Blocks != 0 || u.UsedBytes != 0 {
		t.Errorf("Usage after the interrupted write = %+v", u)
	}
}

func TestDirectoryMinFree(t *testing.T) {
	d := openDir(t, t.TempDir(), dirvolume.Options{MinFreeBytes: 1 << 62})
	b := volumetest.NewBlock("free", 10)
	r := &volumetest.CountingReader{R: bytes.NewReader(b.Data)}
	if err := d.Put(context.Background(), b.Hash, r, 10); !errors.Is(err, keepstore.ErrFull) {
		t.Errorf("Put on a nearly full filesystem = %v, want ErrFull", err)
	}
	if r.Reads() != 0 {
		t.Error("Put read the body before refusing it")
	}
}

func TestDirectoryRootRemoved(t *testing.T) {
	root := filepath.Join(t.TempDir(), "vol")
	os.Mkdir(root, 0o755)
	d := openDir(t, root, dirvolume.Options{})
	b := volumetest.NewBlock("gone", 10)
	if err := d.Put(context.Background(), b.Hash, bytes.NewReader(b.Data), 10); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(root)
	b2 := volumetest.NewBlock("gone2", 10)
	r := &volumetest.CountingReader{R: bytes.NewReader(b2.Data)}
	err := d.Put(context.Background(), b2.Hash, r, 10)
	if err == nil || errors.Is(err, keepstore.ErrFull) || errors.Is(err, keepstore.ErrReadOnly) {
		t.Errorf("Put to removed volume = %v, want an unavailability error", err)
	}
	if r.Reads() != 0 {
		t.Error("Put to a removed volume read the body")
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Error("Put recreated the removed volume directory")
	}
	if _, _, err := d.Open(context.Background(), b.Hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Open on removed volume = %v, want ErrNotFound", err)
	}
	if err := d.Index(context.Background(), "", func(keepstore.BlockInfo) error { return nil }); err == nil {
		t.Error("Index of a removed volume succeeded")
	}
}

func TestOpenErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	for _, root := range []string{filepath.Join(t.TempDir(), "missing"), f} {
		if _, err := dirvolume.Open(root, dirvolume.Options{}); err == nil || !strings.HasPrefix(err.Error(), "volume "+root) || strings.Contains(err.Error(), "keepstore.") {
			t.Errorf("Open(%s) = %v", root, err)
		}
	}
}

// TestDirectoryClaimsAsBytesArrive: a write in flight claims the bytes
// it has received, so another write that would fit but for it fails
// with ErrBusy (retryable), one that could never fit fails with ErrFull,
// and the room comes back when the first write fails.
func TestDirectoryClaimsAsBytesArrive(t *testing.T) {
	d := openDir(t, t.TempDir(), dirvolume.Options{Capacity: 150})
	first := volumetest.NewBlock("first", 100)
	pr, pw := io.Pipe()
	done := make(chan error)
	go func() { done <- d.Put(context.Background(), first.Hash, pr, 100) }()
	pw.Write(first.Data[:99]) // returns once Put has read the bytes
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		u, err := d.Usage(context.Background())
		if err == nil && u.ReservedBytes == 99 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Usage with 99 bytes in flight = %+v, %v; want 99 reserved", u, err)
		}
	}
	second := volumetest.NewBlock("second", 100)
	if err := d.Put(context.Background(), second.Hash, bytes.NewReader(second.Data), 100); !errors.Is(err, keepstore.ErrBusy) {
		t.Errorf("Put that fits but for a write in flight = %v, want ErrBusy", err)
	}
	huge := volumetest.NewBlock("huge", 200)
	if err := d.Put(context.Background(), huge.Hash, bytes.NewReader(huge.Data), 200); !errors.Is(err, keepstore.ErrFull) {
		t.Errorf("Put larger than the capacity = %v, want ErrFull", err)
	}
	pw.CloseWithError(errors.New("client went away"))
	if err := <-done; err == nil {
		t.Fatal("interrupted Put succeeded")
	}
	if err := d.Put(context.Background(), second.Hash, bytes.NewReader(second.Data), 100); err != nil {
		t.Errorf("Put after the write in flight failed = %v, want nil", err)
	}
	if u, _ := d.Usage(context.Background()); u.ReservedBytes != 0 || u.UsedBytes != 100 {
		t.Errorf("Usage after = %+v, want 0 reserved, 100 used", u)
	}
}
