package dirvolume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keepproject/keep/keepstore"
)

// trashInfix joins a block's name and its deadline in the name of its
// trashed copy, ROOT/xyz/HASH.trash.DEADLINE (Unix seconds), as in
// Arvados keepstore's Directory volumes.
const trashInfix = ".trash."

// staleTmpAge is how old a temporary file that no write of this
// Directory claims must be before EmptyTrash removes it. A write claims
// its file microseconds after creating it; the margin covers that.
const staleTmpAge = time.Minute

// Trash implements keepstore.Volume.
func (d *Directory) Trash(ctx context.Context, hash string, mtime, deadline time.Time) error {
	p, err := d.writablePath(hash)
	if err != nil {
		return err
	}
	// d.mu orders this against the renames of writes and touches, so the
	// block checked is the block trashed.
	d.mu.Lock()
	defer d.mu.Unlock()
	fi, err := os.Lstat(p)
	if err != nil {
		return mapNotExist(err)
	}
	if !fi.ModTime().Equal(mtime) {
		return fmt.Errorf("%w: %s was modified at %s, listed as %s", keepstore.ErrChanged, hash,
			fi.ModTime().UTC().Format(time.RFC3339Nano), mtime.UTC().Format(time.RFC3339Nano))
	}
	if deadline.After(time.Now()) {
		err = os.Rename(p, p+trashInfix+strconv.FormatInt(deadline.Unix(), 10))
	} else {
		err = os.Remove(p)
	}
	if err != nil {
		return err
	}
	d.account(hash, -fi.Size(), -1)
	return syncDir(filepath.Dir(p))
}

// Untrash implements keepstore.Volume. Of several trashed copies, the one with
// the latest deadline is restored.
func (d *Directory) Untrash(ctx context.Context, hash string) error {
	p, err := d.writablePath(hash)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return mapNotExist(err)
	}
	best, bestDeadline := "", int64(-1)
	for _, e := range ents {
		if h, dl, ok := parseTrashName(e.Name()); ok && h == hash && dl > bestDeadline {
			best, bestDeadline = e.Name(), dl
		}
	}
	if best == "" {
		return fmt.Errorf("%w: no trashed copy of %s", keepstore.ErrNotFound, hash)
	}
	trashed := filepath.Join(dir, best)
	fi, err := os.Lstat(trashed)
	if err != nil {
		return mapNotExist(err)
	}
	now := time.Now()
	if err := os.Chtimes(trashed, now, now); err != nil {
		return mapNotExist(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old, statErr := os.Lstat(p)
	if err := os.Rename(trashed, p); err != nil {
		return mapNotExist(err)
	}
	if statErr == nil {
		d.account(hash, -old.Size(), -1)
	}
	d.account(hash, fi.Size(), 1)
	return syncDir(dir)
}

// EmptyTrash implements keepstore.Volume. It also removes temporary files that no
// write of this Directory claims: those left by a crash. (The volume's
// lock means no other process writes here.)
func (d *Directory) EmptyTrash(ctx context.Context, now time.Time) (int, error) {
	if d.readOnly {
		return 0, keepstore.ErrReadOnly
	}
	subs, err := os.ReadDir(d.root)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, sub := range subs {
		if !sub.IsDir() || !isShard(sub.Name()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		dir := filepath.Join(d.root, sub.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return deleted, err
		}
		for _, e := range ents {
			name := e.Name()
			p := filepath.Join(dir, name)
			if _, dl, ok := parseTrashName(name); ok {
				if dl < now.Unix() && os.Remove(p) == nil {
					deleted++
				}
				continue
			}
			if strings.HasPrefix(name, tmpPrefix) && d.staleTmp(p) {
				os.Remove(p)
			}
		}
	}
	return deleted, nil
}

// staleTmp reports whether the temporary file p belongs to no write in
// flight.
func (d *Directory) staleTmp(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil || time.Since(fi.ModTime()) < staleTmpAge {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.tmps[p]
}

// parseTrashName splits HASH.trash.DEADLINE.
func parseTrashName(name string) (hash string, deadline int64, ok bool) {
	hash, rest, found := strings.Cut(name, trashInfix)
	if !found || !isHash(hash) {
		return "", 0, false
	}
	deadline, err := strconv.ParseInt(rest, 10, 64)
	return hash, deadline, err == nil
}
