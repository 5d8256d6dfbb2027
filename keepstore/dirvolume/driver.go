package dirvolume

import (
	"context"
	"errors"

	"github.com/keepproject/keep/keepstore"
)

func init() {
	keepstore.RegisterDriver(keepstore.Driver{
		Name:        "Directory",
		Usage:       "DIR\na directory, as Arvados' Driver Directory (DriverParameters.Root)",
		ParseURL:    func(root string) (keepstore.VolumeParams, error) { return Params{Root: root}, nil },
		FromArvados: ArvadosParams,
	})
}

// Params is a Directory volume as its configuration names it:
// keepstore.VolumeParams, opened with the settings every volume has.
type Params struct {
	// Root is the volume's directory.
	Root string
}

// ArvadosParams reads the DriverParameters of an Arvados Directory
// volume: Root, the directory. Other parameters (Serialize) are ignored.
func ArvadosParams(params map[string]any) (keepstore.VolumeParams, error) {
	root, _ := params["Root"].(string)
	if root == "" {
		return nil, errors.New("no DriverParameters.Root for a Directory volume")
	}
	return Params{Root: root}, nil
}

// Open opens the directory with the settings s (Open's Options from
// them); the configured ID is kept in the volume if it has the form of
// a volume uuid, and otherwise only names the volume on the server.
func (p Params) Open(_ context.Context, s keepstore.VolumeSettings) (keepstore.Volume, error) {
	if p.Root == "" {
		return nil, errors.New("no directory given for a Directory volume")
	}
	opts := Options{ReadOnly: s.ReadOnly, Capacity: s.Capacity, NoSync: s.NoSync}
	if keepstore.IsVolumeUUID(s.ID) {
		opts.UUID = s.ID // kept in the volume, or checked against the one kept
	}
	d, err := Open(p.Root, opts)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// String is the directory as configured.
func (p Params) String() string { return p.Root }
