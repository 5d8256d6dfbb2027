package s3volume_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
)

// hook runs fn once, just before the first request match accepts goes
// out.
type hook struct {
	rt    http.RoundTripper
	match func(*http.Request) bool
	fn    func()
	once  sync.Once
}

func (h *hook) RoundTrip(r *http.Request) (*http.Response, error) {
	if h.match(r) {
		h.once.Do(h.fn)
	}
	return h.rt.RoundTrip(r)
}

// A second server on the bucket writes a block again between a Trash's
// mtime check and its delete, so the delete removes a block that was
// just acknowledged: EmptyTrash sees the marker newer than the mtime the
// trash verified and restores the block instead of deleting it. Without
// a racing write the same trash is emptied.
func TestTrashRace(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t)
	other := newVolume(t, srv, s3volume.Options{Bucket: bucket})
	data := []byte("written twice, trashed once")
	h := hashOf(data)
	if err := other.Put(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// The racing write must fall in a later second than the first
	// (S3 times are whole seconds).
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))

	hc := srv.HTTPClient()
	defer hc.CloseIdleConnections()
	var racingPut error
	tr := &hook{
		rt:    hc.Transport,
		match: func(r *http.Request) bool { return r.Method == http.MethodDelete && r.URL.Path == "/"+bucket+"/"+h },
		fn:    func() { racingPut = other.Put(ctx, h, bytes.NewReader(data), int64(len(data))) },
	}
	v, err := s3volume.Open(ctx, s3volume.Options{
		Bucket: bucket, Endpoint: s3test.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
		HTTPClient: &http.Client{Transport: tr},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	bi, err := v.Stat(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Trash(ctx, h, bi.Mtime, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Trash: %v", err)
	}
	if racingPut != nil {
		t.Fatalf("the racing Put: %v", racingPut)
	}
	if _, err := other.Stat(ctx, h); !errors.Is(err, keepstore.ErrNotFound) {
		t.Fatalf("after the race, Stat = %v; the race did not happen", err)
	}
	if n, err := v.EmptyTrash(ctx, time.Now().Add(2*time.Hour)); n != 0 || err != nil {
		t.Errorf("EmptyTrash after the race = %d, %v; want the copy restored, not deleted", n, err)
	}
	if got := readBack(t, v, h); !bytes.Equal(got, data) {
		t.Fatalf("block after the race reads %q", got)
	}

	bi, _ = v.Stat(ctx, h)
	if err := v.Trash(ctx, h, bi.Mtime, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := v.EmptyTrash(ctx, time.Now().Add(2*time.Hour)); n != 1 || err != nil {
		t.Errorf("EmptyTrash with no race = %d, %v; want 1", n, err)
	}
	wantGone(t, v, h)
}

// EmptyTrash's race check on trash states set up by hand: ours, which
// record the mtime Trash verified, and Arvados', which do not and fall
// back on RaceWindow.
func TestEmptyTrashRaceCheck(t *testing.T) {
	srv := s3test.Start(t)
	raw := rawClient(t, srv)
	ctx := context.Background()
	tests := []struct {
		name string
		// ours: a copy with our metadata; its verified mtime is the
		// marker's (no write since) unless writtenSince.
		ours, writtenSince bool
		marker, data       bool
		raceWindow         time.Duration
		restored           bool
	}{
		{name: "ours, written since, missing", ours: true, writtenSince: true, marker: true, restored: true},
		{name: "ours, not written since", ours: true, marker: true},
		{name: "ours, written since, present", ours: true, writtenSince: true, marker: true, data: true},
		{name: "ours, no marker", ours: true, writtenSince: true},
		{name: "arvados, fresh marker, missing", marker: true, restored: true},
		{name: "arvados, fresh marker, guard off", marker: true, raceWindow: -1},
		{name: "arvados, no marker"},
		{name: "arvados, fresh marker, present", marker: true, data: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bucket := srv.NewBucket(t)
			data := []byte("race check: " + tt.name)
			h := hashOf(data)
			put := func(key string, body []byte, meta map[string]string) {
				t.Helper()
				if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body), Metadata: meta}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.data {
				put(h, data, nil)
			}
			marked := time.Now().Add(-time.Hour)
			if tt.marker {
				put("recent/"+h, nil, nil)
				out, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("recent/" + h)})
				if err != nil {
					t.Fatal(err)
				}
				marked = *out.LastModified
			}
			var meta map[string]string
			if tt.ours {
				verified := marked
				if tt.writtenSince {
					verified = marked.Add(-time.Hour)
				}
				meta = map[string]string{
					"keep-trash-deadline": strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10),
					"keep-trash-mtime":    strconv.FormatInt(verified.Unix(), 10),
				}
			}
			put("trash/"+h, data, meta)
			v := newVolume(t, srv, s3volume.Options{Bucket: bucket, TrashLifetime: time.Hour, RaceWindow: tt.raceWindow})
			n, err := v.EmptyTrash(ctx, time.Now().Add(2*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 0, false: 1}[tt.restored]; n != want {
				t.Errorf("EmptyTrash deleted %d, want %d", n, want)
			}
			if exists(t, raw, bucket, "trash/"+h) {
				t.Error("the trash copy is still there")
			}
			if present := exists(t, raw, bucket, h); present != (tt.restored || tt.data) {
				t.Errorf("block present after EmptyTrash: %v, want %v", present, tt.restored || tt.data)
			}
			if tt.restored || tt.data {
				if got := readBack(t, v, h); !bytes.Equal(got, data) {
					t.Errorf("block reads %q", got)
				}
			}
		})
	}
}
