package keepstore

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Driver is a kind of volume storage: a package of its own (a
// Directory, an S3 bucket) that registers itself with RegisterDriver
// from its init function, so that a program imports the drivers it
// wants and neither it nor the server names any:
//
//	func init() { keepstore.RegisterDriver(keepstore.Driver{Name: "S3", Scheme: "s3", ...}) }
//
// A volume is then configured by its URL (ParseVolume, VolumeConfig.Path,
// keep server --volume) or by an Arvados cluster config's Driver and
// DriverParameters (ArvadosVolume), and opened by New with the settings
// every volume has (VolumeSettings).
type Driver struct {
	// Name is the driver's name in an Arvados cluster config
	// (Volumes.*.Driver: "Directory", "S3"), matched regardless of case.
	Name string
	// Scheme is the URL scheme of the driver's volumes ("s3" for
	// s3://BUCKET...), or "" for the one driver whose volumes are plain
	// paths.
	Scheme string
	// Usage describes the driver's volumes for help texts: its URL
	// form, a newline, and what such a volume is ("s3://BUCKET?...\nan
	// S3 bucket (docs/s3.md)").
	Usage string
	// ParseURL reads a volume's URL (a plain path, for Scheme "").
	// Its errors name the volume.
	ParseURL func(url string) (VolumeParams, error)
	// FromArvados reads the DriverParameters of an Arvados volume of
	// the driver; nil when it has no Arvados counterpart. Its errors
	// need not name the volume: the caller knows its uuid.
	FromArvados func(params map[string]any) (VolumeParams, error)
}

// VolumeParams is one volume's own configuration, as its driver read it
// from a URL or from Arvados DriverParameters: everything the driver
// needs to open it but the settings every volume has.
type VolumeParams interface {
	// Open opens the volume with the settings s. An error wrapping
	// ErrVolumeMissing means the storage is absent or unreachable
	// (the server starts without the volume and reports it); any other
	// error, a mistake in the configuration. Errors name the volume.
	Open(ctx context.Context, s VolumeSettings) (Volume, error)
	// String names the volume in logs and status, without secrets.
	String() string
}

// ReadOnlyParams is implemented by VolumeParams that can themselves ask
// for a read-only volume (an S3 URL's read_only=true): the server then
// treats the volume as read-only whatever VolumeConfig.ReadOnly says.
type ReadOnlyParams interface {
	// ReadOnly reports whether the parameters ask for a read-only
	// volume.
	ReadOnly() bool
}

// VolumeSettings are what the server's configuration says of every
// volume, whatever its driver: VolumeParams.Open takes them.
type VolumeSettings struct {
	// ReadOnly refuses writes, touches and trash.
	ReadOnly bool
	// Capacity limits the bytes of blocks stored; 0 means no limit.
	Capacity int64
	// TrashLifetime is how long a trashed block stays restorable
	// (Config.TrashLifetime); 0 means trashing deletes at once. A
	// volume that keeps trash without a deadline of ours (written by
	// Arvados) uses it to decide when such trash is due.
	TrashLifetime time.Duration
	// ID is the ID the configuration gives the volume (VolumeConfig.ID),
	// or "". A volume that keeps its own uuid keeps this one if it has
	// the form of a volume uuid and it keeps none yet, and refuses to
	// open (UUIDMismatchError) if it keeps another.
	ID string
	// Classes are the volume's storage classes, sorted.
	Classes []string
	// NoSync lets a volume acknowledge writes before they are on stable
	// storage, for measurements only: a crash can lose blocks.
	NoSync bool
	// Logger receives what the volume logs.
	Logger *slog.Logger
}

// The registered drivers.
var drivers struct {
	sync.RWMutex
	list []Driver
}

// schemeForm is what a URL scheme looks like (RFC 3986).
var schemeForm = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*$`)

// RegisterDriver makes a volume driver available to ParseVolume,
// ArvadosVolume and New. It panics if d has no Name or ParseURL, an
// invalid Scheme, or a Name or Scheme another driver has, as
// database/sql.Register does: registering is a program's set-up, not
// something to recover from.
func RegisterDriver(d Driver) {
	drivers.Lock()
	defer drivers.Unlock()
	switch {
	case d.Name == "" || d.ParseURL == nil:
		panic("keepstore.RegisterDriver: a driver needs a Name and ParseURL")
	case d.Scheme != "" && !schemeForm.MatchString(d.Scheme):
		panic(fmt.Sprintf("keepstore.RegisterDriver: %q is not a URL scheme", d.Scheme))
	}
	for _, o := range drivers.list {
		if strings.EqualFold(o.Name, d.Name) || strings.EqualFold(o.Scheme, d.Scheme) {
			panic(fmt.Sprintf("keepstore.RegisterDriver: driver %s (scheme %q) registered twice", d.Name, d.Scheme))
		}
	}
	drivers.list = append(drivers.list, d)
	slices.SortFunc(drivers.list, func(a, b Driver) int { return strings.Compare(a.Name, b.Name) })
}

// Drivers returns the registered drivers, sorted by name.
func Drivers() []Driver {
	drivers.RLock()
	defer drivers.RUnlock()
	return slices.Clone(drivers.list)
}

// ParseVolume reads a volume's URL with the driver registered for its
// scheme: s3://BUCKET?... for the driver of scheme "s3", a plain path
// (no SCHEME:// in front) for the driver of plain paths.
func ParseVolume(url string) (VolumeParams, error) {
	scheme, _, ok := strings.Cut(url, "://")
	if !ok || !schemeForm.MatchString(scheme) {
		scheme = ""
	}
	for _, d := range Drivers() {
		if strings.EqualFold(d.Scheme, scheme) {
			return d.ParseURL(url)
		}
	}
	if scheme == "" {
		return nil, fmt.Errorf("volume %s: no volume driver takes plain paths (known: %s)", url, knownDrivers())
	}
	return nil, fmt.Errorf("volume %s: no volume driver for %s:// URLs (known: %s)", url, scheme, knownDrivers())
}

// ArvadosVolume reads an Arvados volume's DriverParameters with the
// driver registered under its Driver name.
func ArvadosVolume(driver string, params map[string]any) (VolumeParams, error) {
	for _, d := range Drivers() {
		if strings.EqualFold(d.Name, driver) && d.FromArvados != nil {
			return d.FromArvados(params)
		}
	}
	return nil, fmt.Errorf("driver %q is not supported (known: %s)", driver, knownDrivers())
}

// knownDrivers lists the drivers for messages: "Directory (paths), S3 (s3://)".
func knownDrivers() string {
	var names []string
	for _, d := range Drivers() {
		if d.Scheme == "" {
			names = append(names, d.Name+" (paths)")
		} else {
			names = append(names, d.Name+" ("+d.Scheme+"://)")
		}
	}
	if len(names) == 0 {
		return "none registered"
	}
	return strings.Join(names, ", ")
}
