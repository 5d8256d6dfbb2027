package dirvolume

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keepproject/keep/internal/flock"
	"github.com/keepproject/keep/keepstore"
)

// Files in a Directory volume's root beside the block subdirectories.
// Neither name looks like a block subdirectory, so Arvados keepstore
// ignores them too.
const (
	// LockFileName is the lock a writable volume's server holds.
	LockFileName = "keep-volume.lock"
	// UUIDFileName holds the volume's UUID.
	UUIDFileName = "keep-volume-uuid"
)

// ErrVolumeInUse is wrapped by the error Open returns when another
// server holds the volume's lock.
var ErrVolumeInUse = errors.New("volume in use by another server")

// lockVolume takes the lock of the volume at root, so that no two
// servers serve it at once.
func lockVolume(root string) (*flock.Lock, error) {
	l, err := flock.Take(filepath.Join(root, LockFileName))
	var held *flock.HeldError
	if errors.As(err, &held) {
		return nil, &VolumeInUseError{Root: root, Holder: held.Holder}
	}
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", root, err)
	}
	return l, nil
}

// VolumeInUseError says which volume is locked and by whom.
type VolumeInUseError struct {
	Root   string // the volume's directory
	Holder string // the process ID in the lock file, if any
}

// Error names the volume and the process holding it.
func (e *VolumeInUseError) Error() string {
	who := "another server"
	if e.Holder != "" {
		who += " (process " + e.Holder + ")"
	}
	return fmt.Sprintf("volume %s is in use by %s; two servers must never share a volume", e.Root, who)
}

// Unwrap makes errors.Is(err, ErrVolumeInUse) true.
func (e *VolumeInUseError) Unwrap() error { return ErrVolumeInUse }

// volumeUUID reads the UUID kept in root, creating it if the volume is
// writable and has none. want, if set, is the UUID the configuration
// gives the volume: it is what a volume without one gets, and a volume
// keeping another is refused (*keepstore.UUIDMismatchError), since
// serving it under a new UUID would make keep balance take it for a
// new, empty volume. Without want, a volume created before volumes kept
// UUIDs gets the one derived from its path, so that its blocks keep
// their places; a new one gets a random UUID. A read-only volume keeping
// none is called want, else by its path, and nothing is written.
func volumeUUID(root string, readOnly bool, want string) (string, error) {
	if want != "" && !keepstore.IsVolumeUUID(want) {
		return "", fmt.Errorf("the configured uuid %q is not a volume UUID (like zzzzz-nyw5e-0123456789abcde)", want)
	}
	p := filepath.Join(root, UUIDFileName)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if !keepstore.IsVolumeUUID(id) {
			return "", fmt.Errorf("%s holds %q, not a volume UUID (like keep0-nyw5e-0123456789abcde)", p, id)
		}
		if want != "" && id != want {
			return "", &keepstore.UUIDMismatchError{Root: root, Kept: id, Configured: want}
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	case readOnly:
		return cmp.Or(want, keepstore.DerivedVolumeUUID(root)), nil
	}
	id := want
	switch {
	case id != "":
	case hasBlockDirs(root):
		id = keepstore.DerivedVolumeUUID(root)
	default:
		id = keepstore.NewVolumeUUID()
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", err
	}
	return id, syncDir(root)
}

// hasBlockDirs reports whether root has any block subdirectory.
func hasBlockDirs(root string) bool {
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		if e.IsDir() && isShard(e.Name()) {
			return true
		}
	}
	return false
}
