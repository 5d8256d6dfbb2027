package keepfs

import (
	"container/list"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keepproject/keep/locator"
)

// diskCache keeps blocks as files named by their hash under a directory
// (DIR/abc/abc…), up to max bytes, least recently used removed first. A
// block is written to a temporary file and renamed into place, so a
// crash leaves no partial file under a block's name, and it is verified
// against its hash every time it is read back: a file that does not
// match is removed and the block read from the servers.
type diskCache struct {
	dir string
	max int64
	log *slog.Logger

	mu    sync.Mutex               // protects the fields below
	used  int64                    // bytes of the files in index
	lru   list.List                // of *diskEntry, most recently used at the front
	index map[string]*list.Element // by hash
}

type diskEntry struct {
	hash string
	size int64
}

// tempPrefix starts the names of files being written.
const tempPrefix = ".tmp-"

// openDiskCache indexes the blocks already under dir (creating it if
// need be), oldest use last, removes the temporary files of writes a
// crash interrupted, and trims the cache to max bytes.
func openDiskCache(dir string, max int64, log *slog.Logger) (*diskCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	type found struct {
		diskEntry
		used time.Time
	}
	var all []found
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		if strings.HasPrefix(name, tempPrefix) {
			return os.Remove(path)
		}
		info, err := d.Info()
		if err != nil || !isHash(name) || filepath.Base(filepath.Dir(path)) != name[:3] {
			return err // not ours: left alone
		}
		all = append(all, found{diskEntry{name, info.Size()}, info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("disk cache: %w", err)
	}
	slices.SortFunc(all, func(a, b found) int { return a.used.Compare(b.used) })
	c := &diskCache{dir: dir, max: max, log: log, index: map[string]*list.Element{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range all {
		e := f.diskEntry
		c.index[e.hash] = c.lru.PushFront(&e)
		c.used += e.size
	}
	c.trim()
	return c, nil
}

// isHash reports whether s is 32 lower-case hex digits.
func isHash(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

func (c *diskCache) path(hash string) string { return filepath.Join(c.dir, hash[:3], hash) }

// get returns block l from the cache, read into buf if large enough,
// or false if it is not there or not intact.
func (c *diskCache) get(l locator.Locator, buf []byte) ([]byte, bool) {
	c.mu.Lock()
	el, ok := c.index[l.Hash]
	if ok {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	p := c.path(l.Hash)
	data, err := readInto(p, buf)
	if err == nil && (int64(len(data)) != l.Size && l.Size >= 0 || md5Hex(data) != l.Hash) {
		err = fmt.Errorf("content does not match the hash (%d bytes)", len(data))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false // removed meanwhile, to make room
	}
	if err != nil {
		c.log.Warn("disk cache: block unusable, removed; reading it from the servers", "block", l.Bare().String(), "error", err)
		c.remove(l.Hash)
		return nil, false
	}
	now := time.Now()
	os.Chtimes(p, now, now) // the order of use, for the next start
	return data, true
}

// readInto reads the file at p into buf if large enough.
func readInto(p string, buf []byte) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > locator.MaxBlockSize {
		return nil, fmt.Errorf("%d bytes is more than a block", info.Size())
	}
	n := int(info.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := f.ReadAt(buf, 0); err != nil && n > 0 {
		return nil, err
	}
	return buf, nil
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// put stores data, verified block l, unless it is there already.
// Failures are logged: the cache is an optimisation.
func (c *diskCache) put(l locator.Locator, data []byte) {
	size := int64(len(data))
	c.mu.Lock()
	_, ok := c.index[l.Hash]
	c.mu.Unlock()
	if ok || size > c.max {
		return
	}
	if err := c.write(l.Hash, data); err != nil {
		c.log.Warn("disk cache: block not stored", "block", l.Bare().String(), "error", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[l.Hash]; ok {
		return // another writer won the race; same content
	}
	c.index[l.Hash] = c.lru.PushFront(&diskEntry{l.Hash, size})
	c.used += size
	c.trim()
}

// write writes data to a temporary file and renames it to hash's path.
func (c *diskCache) write(hash string, data []byte) error {
	dir := filepath.Dir(c.path(hash))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, tempPrefix+hash+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path(hash))
}

// remove drops hash from the cache.
func (c *diskCache) remove(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[hash]; ok {
		c.drop(el)
	}
}

// trim removes least recently used files until at most max bytes are
// held. c.mu is held.
func (c *diskCache) trim() {
	for c.used > c.max && c.lru.Len() > 0 {
		c.drop(c.lru.Back())
	}
}

// drop removes el's file. c.mu is held.
func (c *diskCache) drop(el *list.Element) {
	e := el.Value.(*diskEntry)
	c.lru.Remove(el)
	delete(c.index, e.hash)
	c.used -= e.size
	if err := os.Remove(c.path(e.hash)); err != nil && !os.IsNotExist(err) {
		c.log.Warn("disk cache: removing a block", "block", e.hash, "error", err)
	}
}
