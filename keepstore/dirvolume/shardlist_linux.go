package dirvolume

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keepproject/keep/keepstore"
)

// direntBufSize is how much of a directory one getdents call reads: a
// subdirectory of 2,500 blocks (10M blocks in all) in three calls.
const direntBufSize = 64 << 10

// minStatChunk is the fewest files a goroutine of shardLister.list
// takes the sizes and mtimes of: fewer are not worth starting it.
const minStatChunk = 64

// shardLister lists block subdirectories: it reads one with getdents,
// keeps the names of blocks, takes each one's size and mtime with
// fstatat relative to the subdirectory, and sorts them. Its buffers are
// reused from one subdirectory to the next, so that a listing allocates
// one string per subdirectory (the hashes) and the NUL-terminated copy
// of each name that x/sys/unix makes for fstatat, rather than a file
// name, a directory entry and a FileInfo per block as os.ReadDir does.
// It is for one goroutine at a time.
type shardLister struct {
	dirents []byte                // what getdents returned
	names   []byte                // the blocks' names, 32 bytes each
	ents    []shardEntry          // the blocks found
	blocks  []keepstore.BlockInfo // the listing returned
	temps   []string              // the temporary files seen by the last list
}

// shardEntry is a block found in a subdirectory.
type shardEntry struct {
	off   int // of its name in names
	size  int64
	mtime time.Time
}

// list returns the blocks of subdirectory shard of root whose hash
// starts with prefix, sorted by hash; the slice is valid until the next
// call. A subdirectory that does not exist has none, provided root
// does. Up to workers goroutines take the blocks' sizes and mtimes, if
// there are enough of them.
func (l *shardLister) list(root, shard, prefix string, workers int) ([]keepstore.BlockInfo, error) {
	dir := filepath.Join(root, shard)
	fd, err := openDir(dir)
	if errors.Is(err, unix.ENOENT) {
		if _, err := os.Stat(root); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := l.readNames(fd, dir, shard, prefix); err != nil {
		return nil, err
	}
	hashes := string(l.names)
	n := len(hashes) / 32
	l.ents = slices.Grow(l.ents[:0], n)[:n]
	chunk := n
	if workers > 1 && n >= 2*minStatChunk {
		chunk = max((n+workers-1)/workers, minStatChunk)
	}
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		wg.Go(func() { l.stat(fd, hashes, lo, min(lo+chunk, n)) })
	}
	l.stat(fd, hashes, 0, min(chunk, n))
	wg.Wait()
	l.ents = slices.DeleteFunc(l.ents, func(e shardEntry) bool { return e.size < 0 })
	slices.SortFunc(l.ents, func(a, b shardEntry) int {
		return strings.Compare(hashes[a.off:a.off+32], hashes[b.off:b.off+32])
	})
	l.blocks = l.blocks[:0]
	for _, e := range l.ents {
		l.blocks = append(l.blocks, keepstore.BlockInfo{Hash: hashes[e.off : e.off+32], Size: e.size, Mtime: e.mtime})
	}
	return l.blocks, nil
}

// stat fills l.ents[lo:hi] with the sizes and mtimes of the names
// hashes[32*lo:32*hi], and a size of -1 for those that are gone or are
// not regular files.
func (l *shardLister) stat(fd int, hashes string, lo, hi int) {
	var st unix.Stat_t
	for i := lo; i < hi; i++ {
		off := 32 * i
		if fstatat(fd, hashes[off:off+32], &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			l.ents[i] = shardEntry{off: off, size: -1} // removed meanwhile, or not a block
			continue
		}
		l.ents[i] = shardEntry{off: off, size: st.Size, mtime: time.Unix(st.Mtim.Unix())}
	}
}

// readNames reads the directory fd and keeps in l.names the names of
// the regular files (or files of unknown type) that look like blocks of
// shard and start with prefix.
func (l *shardLister) readNames(fd int, dir, shard, prefix string) error {
	if l.dirents == nil {
		l.dirents = make([]byte, direntBufSize)
	}
	l.names, l.temps = l.names[:0], l.temps[:0]
	for {
		n, err := unix.Getdents(fd, l.dirents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "readdirent", Path: dir, Err: err}
		}
		if n <= 0 {
			return nil
		}
		l.keepBlockNames(l.dirents[:n], shard, prefix)
	}
}

// keepBlockNames parses buf, records of struct linux_dirent64 (inode
// u64, offset s64, record length u16, type u8, then the name and a NUL),
// appends to l.names those of readNames' description, and to l.temps
// the names of temporary files.
func (l *shardLister) keepBlockNames(buf []byte, shard, prefix string) {
	const nameOff = 19
	for len(buf) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < nameOff || reclen > len(buf) {
			return // not a record: stop rather than misread
		}
		rec := buf[:reclen]
		buf = buf[reclen:]
		ino, typ, name := binary.NativeEndian.Uint64(rec[0:8]), rec[18], rec[nameOff:]
		switch {
		case ino == 0:
			continue // a deleted entry, as os.ReadDir skips
		case bytes.HasPrefix(name, []byte(tmpPrefix)):
			if end := bytes.IndexByte(name, 0); end >= 0 {
				l.temps = append(l.temps, string(name[:end]))
			}
			continue
		case typ != unix.DT_REG && typ != unix.DT_UNKNOWN:
			continue // not a file
		}
		if len(name) < 33 || name[32] != 0 || !isHashBytes(name[:32]) ||
			string(name[:3]) != shard || string(name[:len(prefix)]) != prefix {
			continue
		}
		l.names = append(l.names, name[:32]...)
	}
}

// openDir opens a directory for reading its entries.
func openDir(dir string) (int, error) {
	for {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fstatat is lstat of name in the directory fd.
func fstatat(fd int, name string, st *unix.Stat_t) error {
	for {
		err := unix.Fstatat(fd, name, st, unix.AT_SYMLINK_NOFOLLOW)
		if err != unix.EINTR {
			return err
		}
	}
}

// isHashBytes reports whether b is 32 lowercase hex digits.
func isHashBytes(b []byte) bool {
	if len(b) != 32 {
		return false
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
