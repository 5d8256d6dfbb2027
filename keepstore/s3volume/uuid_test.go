package s3volume_test

import (
	"context"
	"errors"
	"testing"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
)

// A bucket keeps the uuid it is first served under, from flags or a
// cluster config alike; a configuration naming it otherwise is refused,
// naming both, as for a Directory volume.
func TestUUIDKept(t *testing.T) {
	srv := s3test.Start(t)
	open := func(bucket, uuid string, readOnly bool) (*s3volume.Volume, error) {
		hc := srv.HTTPClient()
		t.Cleanup(hc.CloseIdleConnections)
		v, err := s3volume.Open(context.Background(), s3volume.Options{
			Bucket: bucket, Endpoint: s3test.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
			UUID: uuid, ReadOnly: readOnly, HTTPClient: hc,
		})
		if err == nil {
			t.Cleanup(func() { v.Close() })
		}
		return v, err
	}
	const configured, other = "zzzzz-nyw5e-000000000000001", "zzzzz-nyw5e-000000000000002"

	// Served with flags first: a new uuid, kept.
	flags := srv.NewBucket(t)
	v, err := open(flags, "", false)
	if err != nil {
		t.Fatal(err)
	}
	kept := v.UUID()
	if v, err := open(flags, "", false); err != nil || v.UUID() != kept {
		t.Fatalf("opened again: %v, %v; want uuid %s", v, err, kept)
	}
	// Then named in a config: refused unless it is the kept one.
	_, err = open(flags, configured, false)
	var mismatch *keepstore.UUIDMismatchError
	if !errors.As(err, &mismatch) || mismatch.Kept != kept || mismatch.Configured != configured {
		t.Errorf("configured as %s while keeping %s: %v", configured, kept, err)
	}
	if v, err := open(flags, kept, false); err != nil || v.UUID() != kept {
		t.Errorf("configured as the kept uuid: %v", err)
	}

	// Named in a config first: the configured uuid is kept, and flags
	// later serve it under the same.
	cfg := srv.NewBucket(t)
	if v, err := open(cfg, configured, false); err != nil || v.UUID() != configured {
		t.Fatalf("new bucket configured as %s: %v", configured, err)
	}
	if v, err := open(cfg, "", false); err != nil || v.UUID() != configured {
		t.Errorf("the same bucket from flags: %v, want uuid %s", err, configured)
	}
	if _, err := open(cfg, other, true); !errors.As(err, &mismatch) {
		t.Errorf("read-only, configured as %s while keeping %s: %v", other, configured, err)
	}

	// A read-only volume writes nothing: configured, it is what it is
	// called; with flags, a uuid derived from its location.
	ro := srv.NewBucket(t)
	if v, err := open(ro, configured, true); err != nil || v.UUID() != configured {
		t.Errorf("read-only new bucket configured as %s: %v", configured, err)
	}
	if v, err := open(ro, "", false); err != nil || v.UUID() == configured {
		t.Errorf("the read-only open kept a uuid in the bucket: %v", err)
	}
}
