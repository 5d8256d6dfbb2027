package keepstore

import (
	"cmp"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/keepproject/keep/internal/flock"
)

// Files in a Directory volume's root beside the block subdirectories.
// Neither name looks like a block subdirectory, so Arvados keepstore
// ignores them too.
const (
	lockFileName = "keep-volume.lock"
	uuidFileName = "keep-volume-uuid"
)

// ErrVolumeInUse is wrapped by the error OpenDirectory returns when
// another server holds the volume's lock.
var ErrVolumeInUse = errors.New("volume in use by another server")

// lockVolume takes the lock of the volume at root, so that no two
// servers serve it at once.
func lockVolume(root string) (*flock.Lock, error) {
	l, err := flock.Take(filepath.Join(root, lockFileName))
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

func (e *VolumeInUseError) Error() string {
	who := "another server"
	if e.Holder != "" {
		who += " (process " + e.Holder + ")"
	}
	return fmt.Sprintf("volume %s is in use by %s; two servers must never share a volume", e.Root, who)
}

// Unwrap makes errors.Is(err, ErrVolumeInUse) true.
func (e *VolumeInUseError) Unwrap() error { return ErrVolumeInUse }

// volumeUUIDForm is the form of an Arvados volume UUID.
var volumeUUIDForm = regexp.MustCompile(`^[a-z0-9]{5}-nyw5e-[a-z0-9]{15}$`)

// IsVolumeUUID reports whether s has the form of an Arvados volume UUID.
func IsVolumeUUID(s string) bool { return volumeUUIDForm.MatchString(s) }

// DerivedVolumeUUID derives a volume UUID from a name (a directory's
// path, a bucket's URL): what a volume is called that keeps no UUID of
// its own.
func DerivedVolumeUUID(name string) string { return pathUUID(name) }

// pathUUID derives a volume UUID from a directory's path: what volumes
// were called before they kept a UUID, and what a read-only volume
// without one is called.
func pathUUID(root string) string {
	sum := md5.Sum([]byte(root))
	return "keep0-nyw5e-" + hex.EncodeToString(sum[:])[:15]
}

// NewVolumeUUID returns a random volume UUID.
func NewVolumeUUID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := []byte("keep0-nyw5e-" + strings.Repeat("0", 15))
	r := make([]byte, 15)
	rand.Read(r)
	for i, c := range r {
		b[12+i] = digits[int(c)%len(digits)]
	}
	return string(b)
}

// volumeUUID reads the UUID kept in root, creating it if the volume is
// writable and has none. want, if set, is the UUID the configuration
// gives the volume: it is what a volume without one gets, and a volume
// keeping another is refused (*UUIDMismatchError), since serving it
// under a new UUID would make keep balance take it for a new, empty
// volume. Without want, a volume created before volumes kept UUIDs gets
// the one derived from its path, so that its blocks keep their places;
// a new one gets a random UUID. A read-only volume keeping none is
// called want, else by its path, and nothing is written.
func volumeUUID(root string, readOnly bool, want string) (string, error) {
	if want != "" && !IsVolumeUUID(want) {
		return "", fmt.Errorf("the configured uuid %q is not a volume UUID (like zzzzz-nyw5e-0123456789abcde)", want)
	}
	p := filepath.Join(root, uuidFileName)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if !IsVolumeUUID(id) {
			return "", fmt.Errorf("%s holds %q, not a volume UUID (like keep0-nyw5e-0123456789abcde)", p, id)
		}
		if want != "" && id != want {
			return "", &UUIDMismatchError{Root: root, Kept: id, Configured: want}
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", err
	case readOnly:
		return cmp.Or(want, pathUUID(root)), nil
	}
	id := want
	switch {
	case id != "":
	case hasBlockDirs(root):
		id = pathUUID(root)
	default:
		id = NewVolumeUUID()
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

// UUIDMismatchError is the error opening a volume that keeps a UUID
// other than the one its configuration names: a volume served with
// flags, then named afresh in a cluster config, say. Serving it under
// the new UUID would make keep balance see a new, empty volume and the
// old one gone, so the server refuses to start until one of them is
// changed to the other.
type UUIDMismatchError struct {
	Root       string // the volume's directory (or S3 location)
	Kept       string // the UUID kept in the volume
	Configured string // the UUID the configuration names
}

func (e *UUIDMismatchError) Error() string {
	return fmt.Sprintf("volume %s keeps the uuid %s (in its %s) but the configuration names it %s; "+
		"a changed uuid makes keep balance take it for a new, empty volume. "+
		"Name it %s in the configuration, or if %s is right (the volume was served under it before it kept its uuid), write %s into %s",
		e.Root, e.Kept, uuidFileName, e.Configured, e.Kept, e.Configured, e.Configured, uuidFileName)
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
