// Package dirvolume is the Directory volume driver: a keepstore.Volume
// keeping its blocks in files under a directory, in the layout of
// Arvados keepstore's Directory volumes. Importing it registers the
// driver of plain paths (keep server --volume DIR) and of Arvados'
// Driver: Directory with keepstore.RegisterDriver.
package dirvolume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keepproject/keep/internal/flock"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

// tmpPrefix starts the names of files being written. Such names never
// look like a hash, so a crash leaves no partial block under a real name,
// and Arvados keepstore uses the same prefix.
const tmpPrefix = "tmp"

// Options configures a Directory volume. The zero value is a
// writable volume with no capacity limit.
type Options struct {
	// ReadOnly refuses writes and touches.
	ReadOnly bool
	// Capacity limits the total size of the stored blocks, in bytes;
	// 0 means no limit.
	Capacity int64
	// MinFreeBytes makes the volume full while its filesystem has less
	// free space than this. 0 means MaxBlockSize (64 MiB), as in Arvados;
	// negative disables the check.
	MinFreeBytes int64
	// NoSync answers writes once the block is in the page cache, before
	// it reaches the disk. It is for measuring what syncing costs: a
	// crash can lose blocks the server has acknowledged.
	NoSync bool
	// UUID, if set, is the UUID the configuration gives the volume (an
	// Arvados config's key under Volumes). A volume keeping none is
	// given this one (kept in the volume if it is writable); one keeping
	// another is refused with a *keepstore.UUIDMismatchError.
	UUID string
}

// Directory is a keepstore.Volume keeping each block in a file
// ROOT/xyz/HASH, where xyz is the hash's first three hex digits. This is
// the layout of Arvados keepstore's Directory (unix) volumes, so an
// existing Arvados volume can be served as it is.
//
// Blocks are written to a temporary file in the same subdirectory in
// chunks of 1 MiB, each one's writeback started as it is written,
// synced (fdatasync), renamed into place, and the subdirectory fsynced.
type Directory struct {
	root     string
	readOnly bool
	capacity int64
	minFree  int64
	noSync   bool

	uuid string
	lock *flock.Lock // the volume's lock; nil when read-only

	session string // in the names of this Directory's temporary files

	mu       sync.Mutex      // protects the fields below, and renames of block files
	used     int64           // total size of the block files counted (see account)
	blocks   int64           // number of block files counted
	reserved int64           // bytes received by writes in flight, not yet in used
	tmps     map[string]bool // temporary files of writes in flight
	scan     scanState       // the count started by Open

	listers sync.Pool // of *shardLister, for Index
}

var (
	_ keepstore.Volume       = (*Directory)(nil)
	_ keepstore.UUIDKeeper   = (*Directory)(nil)
	_ keepstore.IndexSharder = (*Directory)(nil)
	_ keepstore.Scanner      = (*Directory)(nil)
)

// bufPool holds the buffers blocks are written through (see copyChunks).
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 1<<20)
	return &b
}}

// Open opens the volume rooted at the existing directory root.
//
// A writable volume is locked (ROOT/keep-volume.lock), so that no two
// servers serve it at once: a second Open of the same directory, in this
// process or another, fails with ErrVolumeInUse until Close. Holding the
// lock, it deletes every temporary file left by interrupted writes (in
// the background, below). A read-only volume takes no lock and removes
// nothing.
//
// The volume's UUID is kept in ROOT/keep-volume-uuid, created on first
// open of a writable volume, so that it moves with the disk and stays
// the same whether the server is configured by flags or a config file
// (see Options.UUID).
//
// A root that does not exist, or cannot be read for an I/O error, is a
// missing disk rather than a mistake: the error wraps
// keepstore.ErrVolumeMissing.
//
// Open returns without reading the volume's block subdirectories: it
// lists them, and one goroutine scans them in the background to count
// the blocks and bytes stored and remove the temporary files, so that a
// server on a volume of millions of blocks starts at once. ScanStatus
// reports its progress and ScanEnded its end; Close cancels it. Until it
// is done, Usage has Counting set and counts only the subdirectories
// scanned so far (and those created since open), and the capacity limit
// is checked against that lower bound: writes go on as usual, and the
// volume can end up above Options.Capacity by at most the bytes written
// before the count was done. From then on, writes that would not fit
// fail with ErrFull as usual.
func Open(root string, opts Options) (*Directory, error) {
	return open(root, opts, nil)
}

// open is Open, with a function for tests that the scan calls after
// reading each subdirectory.
func open(root string, opts Options, hook func(context.Context, int)) (*Directory, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, keepstore.MissingVolume(fmt.Errorf("volume %s: no such directory (create it, or mount its disk)", root))
	case isDiskError(err):
		return nil, keepstore.MissingVolume(fmt.Errorf("volume %s: %w", root, err))
	case err != nil:
		return nil, fmt.Errorf("volume %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("volume %s is not a directory", abs)
	}
	d := &Directory{root: abs, readOnly: opts.ReadOnly, capacity: opts.Capacity, minFree: opts.MinFreeBytes, noSync: opts.NoSync, tmps: map[string]bool{}}
	d.listers.New = func() any { return new(shardLister) }
	if d.minFree == 0 {
		d.minFree = locator.MaxBlockSize
	}
	if !d.readOnly {
		if d.lock, err = lockVolume(abs); err != nil {
			return nil, err
		}
	}
	if d.uuid, err = volumeUUID(abs, d.readOnly, opts.UUID); err != nil {
		d.Close()
		var mismatch *keepstore.UUIDMismatchError
		if errors.As(err, &mismatch) {
			return nil, err // it names the volume
		}
		return nil, fmt.Errorf("volume %s: %w", abs, err)
	}
	var session [4]byte
	rand.Read(session[:])
	d.session = hex.EncodeToString(session[:])
	if err := d.startScan(hook); err != nil {
		d.Close()
		if isDiskError(err) {
			return nil, keepstore.MissingVolume(fmt.Errorf("volume %s: %w", abs, err))
		}
		return nil, fmt.Errorf("volume %s: %w", abs, err)
	}
	return d, nil
}

// Close stops the scan Open started, waiting for it to end, and releases
// the volume's lock. The Directory must not be used after.
func (d *Directory) Close() error {
	d.stopScan()
	if d.lock == nil {
		return nil
	}
	err := d.lock.Unlock()
	d.lock = nil
	return err
}

// UUID returns the volume's UUID: Arvados' volume UUID form, kept in the
// volume. A read-only volume that has none gets one derived from its
// path.
func (d *Directory) UUID() string { return d.uuid }

// Root returns the volume's absolute directory.
func (d *Directory) Root() string { return d.root }

// String names the volume by its absolute directory.
func (d *Directory) String() string { return d.root }

// IndexShardLen is 3: Index reads one subdirectory per three hex digits
// and sorts it in memory, so it is best called a subdirectory at a time.
func (d *Directory) IndexShardLen() int { return 3 }

func (d *Directory) blockPath(hash string) (string, error) {
	if !isHash(hash) {
		return "", fmt.Errorf("invalid hash %q", hash)
	}
	return filepath.Join(d.root, hash[:3], hash), nil
}

// writablePath is blockPath for a change to the block: an error
// wrapping keepstore.ErrReadOnly on a read-only volume.
func (d *Directory) writablePath(hash string) (string, error) {
	p, err := d.blockPath(hash)
	if err == nil && d.readOnly {
		err = keepstore.ErrReadOnly
	}
	return p, err
}

// Open implements keepstore.Volume.
func (d *Directory) Open(ctx context.Context, hash string) (io.ReadCloser, int64, error) {
	p, err := d.blockPath(hash)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, mapNotExist(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file", p)
	}
	return f, fi.Size(), nil
}

// Stat implements keepstore.Volume.
func (d *Directory) Stat(ctx context.Context, hash string) (keepstore.BlockInfo, error) {
	p, err := d.blockPath(hash)
	if err != nil {
		return keepstore.BlockInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return keepstore.BlockInfo{}, mapNotExist(err)
	}
	if !fi.Mode().IsRegular() {
		return keepstore.BlockInfo{}, fmt.Errorf("%s is not a regular file", p)
	}
	return keepstore.BlockInfo{Hash: hash, Size: fi.Size(), Mtime: fi.ModTime()}, nil
}

// Touch implements keepstore.Volume.
func (d *Directory) Touch(ctx context.Context, hash string) error {
	p, err := d.writablePath(hash)
	if err != nil {
		return err
	}
	now := time.Now()
	d.mu.Lock() // see Trash
	defer d.mu.Unlock()
	return mapNotExist(os.Chtimes(p, now, now))
}

// Put implements keepstore.Volume.
func (d *Directory) Put(ctx context.Context, hash string, r io.Reader, size int64) error {
	p, err := d.writablePath(hash)
	if err != nil {
		return err
	}
	if err := d.checkRoom(size); err != nil {
		return err
	}
	res := &reservation{d: d}
	defer res.release()

	dir := filepath.Dir(p)
	pattern := tmpPrefix + hash + "-" + d.session + "-*" // see readShard
	f, err := os.CreateTemp(dir, pattern)
	if errors.Is(err, fs.ErrNotExist) {
		// Mkdir, not MkdirAll: if the root itself has gone (an unmounted
		// disk, say), recreating it would write to the wrong filesystem.
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return mapNoSpace(err)
		}
		syncDir(d.root)
		f, err = os.CreateTemp(dir, pattern)
	}
	if err != nil {
		return mapNoSpace(err)
	}
	tmp := f.Name()
	d.mu.Lock()
	d.tmps[tmp] = true
	d.mu.Unlock()
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(tmp)
		}
		d.mu.Lock()
		delete(d.tmps, tmp)
		d.mu.Unlock()
	}()

	var dst io.Writer = f
	if !d.noSync {
		dst = &writebackFile{f: f}
	}
	buf := bufPool.Get().(*[]byte)
	n, err := copyChunks(dst, r, *buf, res.grow)
	bufPool.Put(buf)
	switch {
	case err != nil:
		return fmt.Errorf("writing block %s: %w", hash, mapNoSpace(err))
	case size >= 0 && n != size:
		return fmt.Errorf("writing block %s: got %d bytes, want %d", hash, n, size)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	if !d.noSync {
		// fdatasync: for a new file, the data and the size and
		// allocation needed to read it back; not its times.
		if err := syncData(f); err != nil {
			return mapNoSpace(err)
		}
	}
	if err := f.Close(); err != nil {
		return mapNoSpace(err)
	}

	d.mu.Lock()
	old, statErr := os.Lstat(p)
	if err := os.Rename(tmp, p); err != nil {
		d.mu.Unlock()
		return err
	}
	committed = true
	if statErr == nil {
		d.account(hash, -old.Size(), -1)
	}
	d.account(hash, n, 1)
	d.reserved -= res.n // now counted in used
	res.n = 0
	d.mu.Unlock()
	if d.noSync {
		return nil
	}
	return syncDir(dir)
}

// checkRoom decides, before the body is read, whether a block of size
// bytes (-1 if unknown) can be taken: keepstore.ErrFull if the filesystem is
// nearly full or the block would not fit beside those stored, ErrBusy
// if it would fit but for the room claimed by writes in flight.
// Refusing here is what lets a server turn down an upload before it is
// sent. Nothing is claimed yet: writes claim room as bytes arrive (see
// reservation), so a client declaring 64 MiB and sending one byte holds
// one byte.
func (d *Directory) checkRoom(size int64) error {
	if d.minFree > 0 {
		free, err := freeBytes(d.root)
		if err != nil {
			return fmt.Errorf("checking free space: %w", err)
		}
		if free >= 0 && free < d.minFree {
			return fmt.Errorf("%w: %d bytes free on filesystem", keepstore.ErrFull, free)
		}
	}
	size = max(size, 0)
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.roomFor(size, 0)
}

// roomFor returns nil if n more bytes fit for a write that has already
// claimed mine; d.mu must be held.
func (d *Directory) roomFor(n, mine int64) error {
	return keepstore.CheckRoom(d.capacity, d.used, d.reserved, mine, n)
}

// reservation is the room one write has claimed on a Directory.
type reservation struct {
	d *Directory
	n int64 // bytes claimed, in d.reserved
}

// grow claims n more bytes, or fails with keepstore.ErrFull or ErrBusy.
func (r *reservation) grow(n int64) error {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	if err := r.d.roomFor(n, r.n); err != nil {
		return err
	}
	r.d.reserved += n
	r.n += n
	return nil
}

// release gives back what is still claimed (nothing, once committed).
func (r *reservation) release() {
	r.d.mu.Lock()
	r.d.reserved -= r.n
	r.n = 0
	r.d.mu.Unlock()
}

// Usage implements keepstore.Volume. The counts come from the scan at open and the
// writes since, not from the disk, so they miss changes made by others.
// While the scan runs they are a lower bound, and Counting is set (see
// Open).
func (d *Directory) Usage(ctx context.Context) (keepstore.Usage, error) {
	d.mu.Lock()
	u := keepstore.Usage{UsedBytes: d.used, Blocks: d.blocks, CapacityBytes: d.capacity, ReservedBytes: d.reserved,
		Counting: !d.scan.done}
	d.mu.Unlock()
	free, err := freeBytes(d.root)
	u.FreeBytes = free
	return u, err
}

// isDiskError reports whether err is the storage failing under a
// volume (an I/O error, a device or network filesystem gone) rather than
// a mistake in its configuration.
func isDiskError(err error) bool {
	return errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENODEV) ||
		errors.Is(err, syscall.ESTALE) || errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.EHOSTDOWN)
}

func mapNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", keepstore.ErrNotFound, err)
	}
	return err
}

func mapNoSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", keepstore.ErrFull, err)
	}
	return err
}

// syncDir makes a rename or creation in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// isHash reports whether a file's name is a block's: 32 lowercase hex
// digits.
func isHash(s string) bool { return locator.ParseHash(s) == nil }

// isShard reports whether a subdirectory's name is a block
// subdirectory's: three lowercase hex digits.
func isShard(s string) bool { return len(s) == 3 && isLowerHex(s) }

func isLowerHex(s string) bool { return strings.Trim(s, "0123456789abcdef") == "" }
