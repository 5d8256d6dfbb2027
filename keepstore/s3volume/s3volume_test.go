package s3volume_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
	"github.com/keepproject/keep/keepstore/volumetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newVolume opens a volume on a fresh bucket of srv (or o.Bucket),
// through o.HTTPClient if set, closed when t ends.
func newVolume(t *testing.T, srv *s3test.Server, o s3volume.Options) *s3volume.Volume {
	t.Helper()
	if o.HTTPClient == nil {
		o.HTTPClient = srv.HTTPClient()
	}
	t.Cleanup(o.HTTPClient.CloseIdleConnections)
	if o.Bucket == "" {
		o.Bucket = srv.NewBucket(t)
	}
	o.Endpoint, o.Region = s3test.Endpoint, srv.Region
	o.AccessKeyID, o.SecretAccessKey = srv.AccessKey, srv.SecretKey
	v, err := s3volume.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// The conformance suite every volume passes, against a real S3 server,
// with both key layouts.
func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	for _, pl := range []int{0, 3} {
		t.Run(map[int]string{0: "HASH", 3: "HASH[:3]/HASH"}[pl], func(t *testing.T) {
			volumetest.Run(t, func(t *testing.T, o volumetest.Options) keepstore.Volume {
				return newVolume(t, srv, s3volume.Options{PrefixLength: pl, ReadOnly: o.ReadOnly, Capacity: o.Capacity})
			})
		})
	}
}
