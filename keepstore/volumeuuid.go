package keepstore

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"regexp"

	"github.com/keepproject/keep/internal/protocol"
)

// uuidName is where a volume keeps its uuid (a Directory's file, an S3
// volume's object), for UUIDMismatchError's message.
const uuidName = "keep-volume-uuid"

// volumeUUIDForm is the form of an Arvados volume UUID.
var volumeUUIDForm = regexp.MustCompile(`^[a-z0-9]{5}-nyw5e-[a-z0-9]{15}$`)

// IsVolumeUUID reports whether s has the form of an Arvados volume UUID.
func IsVolumeUUID(s string) bool { return volumeUUIDForm.MatchString(s) }

// DerivedVolumeUUID derives a volume UUID from a name (a directory's
// path, a bucket's URL): what a volume is called that keeps no UUID of
// its own.
func DerivedVolumeUUID(name string) string {
	sum := md5.Sum([]byte(name))
	return "keep0-nyw5e-" + hex.EncodeToString(sum[:])[:15]
}

// NewVolumeUUID returns a random volume UUID.
func NewVolumeUUID() string {
	return "keep0-nyw5e-" + protocol.RandomBase36(15)
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

// Error names the volume and both uuids, and says how to reconcile them.
func (e *UUIDMismatchError) Error() string {
	return fmt.Sprintf("volume %s keeps the uuid %s (in its %s) but the configuration names it %s; "+
		"a changed uuid makes keep balance take it for a new, empty volume. "+
		"Name it %s in the configuration, or if %s is right (the volume was served under it before it kept its uuid), write %s into %s",
		e.Root, e.Kept, uuidName, e.Configured, e.Kept, e.Configured, e.Configured, uuidName)
}
