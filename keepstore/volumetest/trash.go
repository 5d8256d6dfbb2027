package volumetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
)

// stat returns the block's info or fails the test.
func stat(t *testing.T, v keepstore.Volume, hash string) keepstore.BlockInfo {
	t.Helper()
	bi, err := v.Stat(context.Background(), hash)
	if err != nil {
		t.Fatalf("Stat(%s): %v", hash, err)
	}
	return bi
}

// testTrash: a trashed block is gone from Open, Stat and Index, and
// other blocks stay; Trash with a stale mtime changes nothing; a missing
// block is ErrNotFound.
func testTrash(t *testing.T, newVolume NewFunc) {
	ctx := context.Background()
	v := newVolume(t, Options{})
	b, other := NewBlock("trash", 100), NewBlock("stays", 100)
	put(t, v, b)
	put(t, v, other)
	mt := stat(t, v, b.Hash).Mtime
	later := time.Now().Add(time.Hour)
	if err := v.Trash(ctx, b.Hash, mt.Add(-time.Second), later); !errors.Is(err, keepstore.ErrChanged) {
		t.Errorf("Trash with a stale mtime = %v, want ErrChanged", err)
	}
	if got, err := Read(t, v, b.Hash); err != nil || string(got) != string(b.Data) {
		t.Fatalf("block after a refused Trash: %v", err)
	}
	if err := v.Trash(ctx, b.Hash, mt, later); err != nil {
		t.Fatalf("Trash: %v", err)
	}
	wantAbsent(t, v, b.Hash)
	if got, err := Read(t, v, other.Hash); err != nil || string(got) != string(other.Data) {
		t.Errorf("other block after Trash: %v", err)
	}
	if err := v.Trash(ctx, b.Hash, mt, later); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Trash of a trashed block = %v, want ErrNotFound", err)
	}
	if err := v.Trash(ctx, NewBlock("never", 1).Hash, mt, later); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Trash of a missing block = %v, want ErrNotFound", err)
	}
}

// testUntrash: Untrash restores a trashed block, fresh; with nothing in
// the trash it is ErrNotFound.
func testUntrash(t *testing.T, newVolume NewFunc) {
	ctx := context.Background()
	v := newVolume(t, Options{})
	b := NewBlock("untrash", 100)
	if err := v.Untrash(ctx, b.Hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Untrash with nothing trashed = %v, want ErrNotFound", err)
	}
	put(t, v, b)
	mt := stat(t, v, b.Hash).Mtime
	if err := v.Trash(ctx, b.Hash, mt, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Trash: %v", err)
	}
	before := time.Now().Add(-2 * time.Second) // S3 keeps whole seconds
	if err := v.Untrash(ctx, b.Hash); err != nil {
		t.Fatalf("Untrash: %v", err)
	}
	if got, err := Read(t, v, b.Hash); err != nil || string(got) != string(b.Data) {
		t.Errorf("untrashed block: %v", err)
	}
	if bi := stat(t, v, b.Hash); bi.Mtime.Before(before) {
		t.Errorf("untrashed block's mtime %v, want about now", bi.Mtime)
	}
	found := false
	v.Index(ctx, "", func(bi keepstore.BlockInfo) error {
		found = found || bi.Hash == b.Hash
		return nil
	})
	if !found {
		t.Error("Index does not list the untrashed block")
	}
}

// testEmptyTrash: EmptyTrash deletes trash past its deadline and keeps
// the rest restorable.
func testEmptyTrash(t *testing.T, newVolume NewFunc) {
	ctx := context.Background()
	v := newVolume(t, Options{})
	soon, late := NewBlock("soon", 100), NewBlock("late", 100)
	now := time.Now()
	for _, tb := range []struct {
		b        Block
		deadline time.Time
	}{{soon, now.Add(time.Hour)}, {late, now.Add(10 * time.Hour)}} {
		put(t, v, tb.b)
		if err := v.Trash(ctx, tb.b.Hash, stat(t, v, tb.b.Hash).Mtime, tb.deadline); err != nil {
			t.Fatalf("Trash: %v", err)
		}
	}
	if n, err := v.EmptyTrash(ctx, now); err != nil || n != 0 {
		t.Errorf("EmptyTrash before any deadline = %d, %v; want 0", n, err)
	}
	if n, err := v.EmptyTrash(ctx, now.Add(2*time.Hour)); err != nil || n != 1 {
		t.Errorf("EmptyTrash past one deadline = %d, %v; want 1", n, err)
	}
	if err := v.Untrash(ctx, soon.Hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Untrash after its deadline and EmptyTrash = %v, want ErrNotFound", err)
	}
	if err := v.Untrash(ctx, late.Hash); err != nil {
		t.Errorf("Untrash before its deadline = %v", err)
	}
}

// testTrashAtOnce: a deadline not after now deletes at once.
func testTrashAtOnce(t *testing.T, newVolume NewFunc) {
	ctx := context.Background()
	v := newVolume(t, Options{})
	b := NewBlock("at once", 100)
	put(t, v, b)
	if err := v.Trash(ctx, b.Hash, stat(t, v, b.Hash).Mtime, time.Now()); err != nil {
		t.Fatalf("Trash: %v", err)
	}
	wantAbsent(t, v, b.Hash)
	if err := v.Untrash(ctx, b.Hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Untrash of a block deleted at once = %v, want ErrNotFound", err)
	}
}

// testTrashReadOnly: a read-only volume refuses Trash, Untrash and
// EmptyTrash.
func testTrashReadOnly(t *testing.T, newVolume NewFunc) {
	ctx := context.Background()
	v := newVolume(t, Options{ReadOnly: true})
	h := NewBlock("ro trash", 10).Hash
	if err := v.Trash(ctx, h, time.Now(), time.Now().Add(time.Hour)); !errors.Is(err, keepstore.ErrReadOnly) {
		t.Errorf("Trash on a read-only volume = %v, want ErrReadOnly", err)
	}
	if err := v.Untrash(ctx, h); !errors.Is(err, keepstore.ErrReadOnly) {
		t.Errorf("Untrash on a read-only volume = %v, want ErrReadOnly", err)
	}
	if _, err := v.EmptyTrash(ctx, time.Now()); !errors.Is(err, keepstore.ErrReadOnly) {
		t.Errorf("EmptyTrash on a read-only volume = %v, want ErrReadOnly", err)
	}
}
