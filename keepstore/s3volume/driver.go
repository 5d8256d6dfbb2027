package s3volume

import (
	"context"

	"github.com/keepproject/keep/keepstore"
)

func init() {
	keepstore.RegisterDriver(keepstore.Driver{
		Name:   "S3",
		Scheme: "s3",
		Usage: "s3://BUCKET[/PREFIX]?endpoint=URL&region=R&prefix_length=N&credentials_file=F\n" +
			"an S3 bucket, as Arvados' Driver S3 (credentials otherwise from the AWS environment; docs/s3.md)",
		ParseURL:    func(s string) (keepstore.VolumeParams, error) { return params(ParseURL(s)) },
		FromArvados: func(p map[string]any) (keepstore.VolumeParams, error) { return params(ArvadosOptions(p)) },
	})
}

// volumeParams is an S3 volume as its URL or DriverParameters give it:
// keepstore.VolumeParams, opened with the settings every volume has.
type volumeParams struct{ o Options }

// params wraps what ParseURL or ArvadosOptions returned.
func params(o Options, err error) (keepstore.VolumeParams, error) {
	if err != nil {
		return nil, err
	}
	return volumeParams{o}, nil
}

// Open opens the bucket (see Open) with Options completed from s: the
// capacity, read-only if either says so, the server's trash lifetime
// for trash written by Arvados (unless trashing deletes at once), and
// the configured ID as the uuid unless the URL gave one.
func (p volumeParams) Open(ctx context.Context, s keepstore.VolumeSettings) (keepstore.Volume, error) {
	o := p.o
	o.ReadOnly = o.ReadOnly || s.ReadOnly
	o.Capacity = s.Capacity
	if s.TrashLifetime > 0 {
		o.TrashLifetime = s.TrashLifetime
	}
	if o.UUID == "" {
		o.UUID = s.ID
	}
	v, err := Open(ctx, o)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ReadOnly reports whether the URL asked for a read-only volume
// (read_only=true): keepstore.ReadOnlyParams.
func (p volumeParams) ReadOnly() bool { return p.o.ReadOnly }

// String names the volume without its credentials.
func (p volumeParams) String() string { return p.o.String() }
