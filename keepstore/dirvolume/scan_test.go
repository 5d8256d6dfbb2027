package dirvolume_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// fillVolume writes n block files of 1 to 100 bytes straight into root,
// as a volume filled by an earlier server, and returns their total size.
func fillVolume(t *testing.T, root string, n int) int64 {
	t.Helper()
	var total int64
	for i := range n {
		hash := fmt.Sprintf("%016x%016x", uint64(i+1)*0x9e3779b97f4a7c15, i)
		dir := filepath.Join(root, hash[:3])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		size := 1 + i%100
		if err := os.WriteFile(filepath.Join(dir, hash), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		total += int64(size)
	}
	return total
}

// diskUsage counts the block files under root, as the scan should.
func diskUsage(t *testing.T, root string) (used, blocks int64) {
	t.Helper()
	for _, f := range listFiles(t, root) {
		name := filepath.Base(f)
		if len(name) != 32 || strings.HasPrefix(name, "tmp") {
			continue
		}
		fi, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		used += fi.Size()
		blocks++
	}
	return used, blocks
}

func usage(t *testing.T, d *dirvolume.Directory) keepstore.Usage {
	t.Helper()
	u, err := d.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestDirectoryScanInBackground: Open returns while the scan is still
// held at its first subdirectory, reporting it running and the usage as
// still counting; once it ends, it has counted every block, and removed
// the temporary files of an earlier server.
func TestDirectoryScanInBackground(t *testing.T) {
	root := t.TempDir()
	const n = 20000
	total := fillVolume(t, root, n)
	stale := filepath.Join(root, "abc", "tmp0123-crashed")
	os.MkdirAll(filepath.Dir(stale), 0o755)
	os.WriteFile(stale, []byte("partial"), 0o644)

	d, release := openHeld(t, root, dirvolume.Options{}, -1)
	defer d.Close()
	if st := d.ScanStatus(); st.State != "running" || st.DirsDone != 0 || st.Dirs != 4096 || st.Blocks != 0 {
		t.Errorf("ScanStatus while held at the first subdirectory = %+v, want running, 0 of 4096 done", st)
	}
	if u := usage(t, d); !u.Counting || u.Blocks != 0 {
		t.Errorf("Usage while scanning = %+v, want Counting and nothing counted", u)
	}
	close(release)
	<-d.ScanEnded()
	st := d.ScanStatus()
	if st.State != "done" || st.Blocks != n || st.Bytes != total || st.DirsDone != st.Dirs || st.TempFilesRemoved != 1 || st.Error != "" {
		t.Errorf("ScanStatus at the end = %+v, want done, %d blocks, %d bytes, 1 temporary file removed", st, n, total)
	}
	if u := usage(t, d); u.Counting || u.Blocks != n || u.UsedBytes != total {
		t.Errorf("Usage after the scan = %+v, want %d blocks, %d bytes", u, n, total)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("temporary file of an earlier server still there after the scan: %v", err)
	}
}

// TestDirectoryWritesDuringScan: writes and trashes in subdirectories
// the scan has counted, is reading, and has yet to read all end up
// counted once; a write in flight while the scan passes keeps its
// temporary file.
func TestDirectoryWritesDuringScan(t *testing.T) {
	root := t.TempDir()
	fillVolume(t, root, 3000)
	const before, held, after = "100", "800", "f00" // the scan is held reading "800"
	blocks := map[string][]volumetest.Block{}
	for i := 0; len(blocks[before]) < 2 || len(blocks[held]) < 2 || len(blocks[after]) < 2; i++ {
		b := volumetest.NewBlock(fmt.Sprint("during", i), 10+i%50)
		if len(blocks[b.Hash[:3]]) < 2 {
			blocks[b.Hash[:3]] = append(blocks[b.Hash[:3]], b)
		}
	}
	// A block stored before open in each of the three, to trash.
	old := map[string]time.Time{}
	for _, shard := range []string{before, held, after} {
		b := blocks[shard][1]
		p := filepath.Join(root, shard, b.Hash)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, b.Data, 0o644)
		fi, _ := os.Stat(p)
		old[shard] = fi.ModTime()
	}
	ctx := context.Background()
	d, release := openHeld(t, root, dirvolume.Options{}, 0x800)
	defer d.Close()
	// A write in flight: its temporary file must survive the scan.
	inflight := volumetest.NewBlock("in flight", 1000)
	pr, pw := io.Pipe()
	putDone := make(chan error, 1)
	go func() { putDone <- d.Put(ctx, inflight.Hash, pr, 1000) }()
	pw.Write(inflight.Data[:10]) // returns once Put has read it
	for _, shard := range []string{before, held, after} {
		b := blocks[shard][0]
		if err := d.Put(ctx, b.Hash, bytes.NewReader(b.Data), int64(len(b.Data))); err != nil {
			t.Fatal(err)
		}
		if err := d.Trash(ctx, blocks[shard][1].Hash, old[shard], time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if st := d.ScanStatus(); st.State != "running" {
		t.Errorf("ScanStatus while held = %+v, want running", st)
	}
	close(release)
	<-d.ScanEnded()
	pw.Write(inflight.Data[10:])
	pw.Close()
	if err := <-putDone; err != nil {
		t.Fatalf("Put in flight while the scan passed: %v", err)
	}
	used, n := diskUsage(t, root)
	if u := usage(t, d); u.Counting || u.Blocks != n || u.UsedBytes != used {
		t.Errorf("Usage after the scan = %+v, want %d blocks, %d bytes as on disk", u, n, used)
	}
}

// TestDirectoryCapacityDuringScan: while the scan counts, the capacity
// is checked against what it has counted, so a write it would refuse
// once done is taken; once done, the volume is full again.
func TestDirectoryCapacityDuringScan(t *testing.T) {
	root := t.TempDir()
	total := fillVolume(t, root, 200)
	d, release := openHeld(t, root, dirvolume.Options{Capacity: total}, -1)
	defer d.Close()
	ctx := context.Background()
	early := volumetest.NewBlock("while counting", 100)
	if err := d.Put(ctx, early.Hash, bytes.NewReader(early.Data), 100); err != nil {
		t.Errorf("Put while counting = %v, want it taken", err)
	}
	close(release)
	<-d.ScanEnded()
	if u := usage(t, d); u.UsedBytes != total+100 {
		t.Errorf("Usage after the scan = %+v, want %d bytes used", u, total+100)
	}
	late := volumetest.NewBlock("once counted", 100)
	if err := d.Put(ctx, late.Hash, bytes.NewReader(late.Data), 100); !errors.Is(err, keepstore.ErrFull) {
		t.Errorf("Put once counted = %v, want ErrFull", err)
	}
}

// TestDirectoryCloseDuringScan: Close cancels the scan and waits for
// it; goleak (TestMain) sees that no goroutine is left.
func TestDirectoryCloseDuringScan(t *testing.T) {
	root := t.TempDir()
	fillVolume(t, root, 500)
	d, _ := openHeld(t, root, dirvolume.Options{}, -1) // never released: Close ends the scan
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.ScanEnded():
	default:
		t.Fatal("Close returned before the scan ended")
	}
	if st := d.ScanStatus(); st.State != "canceled" {
		t.Errorf("ScanStatus after Close = %+v, want canceled", st)
	}
	// The lock is free: the volume opens again, and its scan completes.
	d2 := openDir(t, root, dirvolume.Options{})
	<-d2.ScanEnded()
	if u := usage(t, d2); u.Blocks != 500 {
		t.Errorf("Usage after reopening = %+v, want 500 blocks", u)
	}
}

// TestDirectoryEmptyOpensCounted: a volume with no block
// subdirectories has nothing to scan: its usage is known at once.
func TestDirectoryEmptyOpensCounted(t *testing.T) {
	d := openDir(t, t.TempDir(), dirvolume.Options{})
	select {
	case <-d.ScanEnded():
	default:
		t.Fatal("scan of an empty volume not ended at open")
	}
	if u := usage(t, d); u.Counting {
		t.Errorf("Usage of an empty volume = %+v, want counted", u)
	}
}

// openHeld opens the volume at root with a scan that stops after
// reading subdirectory shard (-1: the first it reads) until release is
// closed or the volume is closed, and returns once the scan is held
// there.
func openHeld(t *testing.T, root string, opts dirvolume.Options, shard int) (d *dirvolume.Directory, release chan struct{}) {
	t.Helper()
	reached, release := make(chan struct{}), make(chan struct{})
	held := false
	d, err := dirvolume.OpenWithScanHook(root, opts, func(ctx context.Context, i int) {
		if held || shard >= 0 && i != shard {
			return
		}
		held = true
		close(reached)
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	<-reached
	return d, release
}
