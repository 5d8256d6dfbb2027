package keepstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Volume is one place blocks are stored, named by their MD5 hash (32
// lowercase hex digits). The server decides which volumes to use and
// checks every block's hash; a volume only keeps bytes. Implementations
// must be safe for concurrent use.
//
// Errors that callers branch on wrap ErrNotFound, ErrFull or ErrReadOnly;
// any other error means the volume is unavailable or failing.
type Volume interface {
	// Open returns a reader for the block's content and its size.
	// It returns an error wrapping ErrNotFound when the block is absent.
	Open(ctx context.Context, hash string) (io.ReadCloser, int64, error)

	// Put stores the block, reading its content from r until io.EOF.
	// size is the expected length, or -1 when unknown.
	//
	// Put decides whether it can take the block (read-only, full,
	// unavailable) before reading anything from r, so a refusal costs the
	// client no upload. Room is claimed as the content arrives, not for
	// size up front, so that uploads declaring a large size and sending
	// little cannot make a volume look full; a Put that finds its room
	// taken by other writes in flight, before or while reading, fails
	// with ErrBusy, and only one that could not fit even if they all
	// failed fails with ErrFull. If reading r fails, or the content is
	// not exactly size bytes, or ctx is cancelled, nothing is stored and
	// the error wraps the cause. A block already present is replaced, which is
	// harmless because content determines the name. Put does not check
	// the hash: the caller does, through r.
	Put(ctx context.Context, hash string, r io.Reader, size int64) error

	// Stat returns the block's size and modification time, or an error
	// wrapping ErrNotFound.
	Stat(ctx context.Context, hash string) (BlockInfo, error)

	// Touch sets the block's modification time to now. It returns an
	// error wrapping ErrNotFound when the block is absent and ErrReadOnly
	// on a read-only volume.
	Touch(ctx context.Context, hash string) error

	// Index calls fn for every block whose hash starts with prefix, in
	// ascending hash order, and stops at the first error fn returns.
	Index(ctx context.Context, prefix string, fn func(BlockInfo) error) error

	// Usage reports how much the volume holds and how much room is left.
	Usage(ctx context.Context) (Usage, error)

	// Trash moves the block to the volume's trash if its modification
	// time is still mtime (as Stat or Index reported it); otherwise it
	// returns an error wrapping ErrChanged and changes nothing, so that
	// a decision made from an old index cannot remove a block written
	// since. From then on Open, Stat and Index do not see the block;
	// Untrash restores it, and EmptyTrash deletes it once deadline has
	// passed. A deadline not after the current time deletes the block at
	// once. It returns an error wrapping ErrNotFound if the block is
	// absent and ErrReadOnly on a read-only volume.
	Trash(ctx context.Context, hash string, mtime, deadline time.Time) error

	// Untrash restores a trashed copy of the block, whose modification
	// time becomes now. It returns an error wrapping ErrNotFound when
	// the trash holds no copy.
	Untrash(ctx context.Context, hash string) error

	// EmptyTrash deletes the trashed copies whose deadline is before now
	// and returns how many it deleted. Volumes that leave other debris
	// (temporary files of interrupted writes) remove it here too.
	EmptyTrash(ctx context.Context, now time.Time) (int, error)
}

// A volume declares its optional abilities by implementing the small
// interfaces below, which the server checks for; io.Closer is one too
// (Server.Close closes the volumes New opened that implement it).

// UUIDKeeper is implemented by a volume that keeps its own uuid (a
// Directory in a file, an S3 bucket in an object): the server names
// the volume by it when VolumeConfig.ID is empty.
type UUIDKeeper interface {
	// UUID returns the uuid the volume keeps.
	UUID() string
}

// DeviceIdentifier is implemented by a volume that names its storage
// the same way from every host (an S3 bucket by its endpoint, bucket and
// prefix), so that keep-balance sees one device where several servers
// serve it (GET /mounts). Without it, the device is host:label.
type DeviceIdentifier interface {
	// DeviceID names the storage under the volume.
	DeviceID() string
}

// IndexSharder is implemented by a volume whose Index is best called
// for prefixes of IndexShardLen hex digits: a Directory lists one
// subdirectory per three digits and holds what it lists in memory to
// sort it, so the server reads it three digits at a time when every
// volume asks for that. Volumes without it list in order at a cost per
// request (object stores): the server reads one such volume whole, and
// several one hex digit at a time, merging their listings.
type IndexSharder interface {
	// IndexShardLen is the prefix length, in hex digits, Index is
	// best called with.
	IndexShardLen() int
}

// Errors wrapped by Volume methods.
var (
	// ErrNotFound means the block is not on the volume.
	ErrNotFound = errors.New("block not found")
	// ErrFull means the volume cannot take the block: its capacity limit
	// would be exceeded or its filesystem is nearly full.
	ErrFull = errors.New("volume full")
	// ErrReadOnly means the volume does not accept writes.
	ErrReadOnly = errors.New("volume is read-only")
	// ErrBusy means the volume cannot take the block now but may soon:
	// its room is claimed by writes in flight, which may fail and give
	// it back. The server answers 503 with Retry-After, not 507.
	ErrBusy = errors.New("volume busy")
	// ErrChanged means a block was written or touched since the caller
	// looked at it, so Trash left it alone.
	ErrChanged = errors.New("block changed since it was listed")
	// ErrVolumeMissing is wrapped by the error opening a volume whose
	// storage is absent or unreachable (an unmounted disk, a bucket
	// whose endpoint does not answer), as opposed to one configured
	// wrongly. New starts without such a volume, as long as another
	// opens, and reports it.
	ErrVolumeMissing = errors.New("volume missing")
)

// MissingVolume returns err marked as the error of a missing volume:
// errors.Is(…, ErrVolumeMissing) holds, and the message is err's.
func MissingVolume(err error) error { return missingError{err} }

type missingError struct{ err error }

func (e missingError) Error() string   { return e.err.Error() }
func (e missingError) Unwrap() []error { return []error{ErrVolumeMissing, e.err} }

// BlockInfo describes one stored block.
type BlockInfo struct {
	// Hash is the block's MD5 as 32 lowercase hex digits.
	Hash string
	// Size is the block's length in bytes.
	Size int64
	// Mtime is when the block was last written or touched.
	Mtime time.Time
}

// Usage is a volume's occupancy.
type Usage struct {
	// UsedBytes is the total size of the blocks stored.
	UsedBytes int64 `json:"used_bytes"`
	// Blocks is the number of blocks stored.
	Blocks int64 `json:"blocks"`
	// CapacityBytes is the configured limit on UsedBytes, or 0 for none.
	CapacityBytes int64 `json:"capacity_bytes"`
	// ReservedBytes is the room claimed by writes in flight: the bytes
	// they have received so far.
	ReservedBytes int64 `json:"reserved_bytes"`
	// FreeBytes is the space left on the underlying storage, or -1 when
	// unknown.
	FreeBytes int64 `json:"free_bytes"`
	// Counting reports that the volume is still counting what it holds
	// (a Directory volume scans its files after it opens, see
	// Scanner): UsedBytes and Blocks are then a lower bound.
	Counting bool `json:"counting,omitempty"`
}

// CheckRoom is the capacity rule every volume applies: whether n more
// bytes fit on a volume limited to capacity bytes (0 or less: no limit)
// that holds used bytes of blocks and has claimed bytes promised to
// writes in flight, mine of them to the write asking. It returns nil if
// they fit; an error wrapping ErrFull if they could not fit even were
// every other write to fail; else one wrapping ErrBusy, since room
// claimed by uploads that may yet fail is no reason to answer "full".
func CheckRoom(capacity, used, claimed, mine, n int64) error {
	switch {
	case capacity <= 0 || used+claimed+n <= capacity:
		return nil
	case used+mine+n > capacity:
		return fmt.Errorf("%w: capacity %d bytes reached (%d stored)", ErrFull, capacity, used)
	default:
		return fmt.Errorf("%w: capacity %d bytes, %d stored and %d claimed by writes in flight", ErrBusy, capacity, used, claimed)
	}
}
