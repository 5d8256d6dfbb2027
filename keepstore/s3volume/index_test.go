package s3volume_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
	"github.com/keepproject/keep/keepstore/volumetest"
)

// Index walks the blocks and their recent/ markers side by side, page by
// page: with pages of 2 keys, blocks with and without markers, stray
// markers and strangers' objects, each block is listed once, in order,
// with the time Stat gives it; and a full Index brings Usage up to date
// with blocks written behind the volume's back.
func TestIndexPages(t *testing.T) {
	srv := s3test.Start(t)
	raw := rawClient(t, srv)
	ctx := context.Background()
	for _, pl := range []int{0, 3} {
		t.Run(fmt.Sprint("prefix length ", pl), func(t *testing.T) {
			t.Parallel()
			bucket := srv.NewBucket(t)
			v := newVolume(t, srv, s3volume.Options{Bucket: bucket, PrefixLength: pl, IndexPageSize: 2})
			key := func(h string) string {
				if pl > 0 {
					return h[:pl] + "/" + h
				}
				return h
			}
			rawPut := func(k string, body []byte) {
				if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &k, Body: bytes.NewReader(body)}); err != nil {
					t.Fatal(err)
				}
			}
			var want, marked []string
			for i := range 7 {
				data := []byte(fmt.Sprint("through the volume ", i))
				if err := v.Put(ctx, hashOf(data), bytes.NewReader(data), int64(len(data))); err != nil {
					t.Fatal(err)
				}
				want = append(want, hashOf(data))
				marked = append(marked, hashOf(data))
			}
			for i := range 3 {
				data := []byte(fmt.Sprint("behind its back, no marker ", i))
				rawPut(key(hashOf(data)), data)
				want = append(want, hashOf(data))
			}
			rawPut("recent/"+key(hashOf([]byte("never stored"))), nil)
			rawPut("README", []byte("not a block"))
			rawPut(key("0123"), []byte("not a block"))
			slices.Sort(want)

			// Touch the blocks with markers in the next second (the
			// resolution of S3 times), so that a block given a marker
			// not its own, or missing its own, shows a time Stat does
			// not give it.
			time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
			for _, h := range marked {
				if err := v.Touch(ctx, h); err != nil {
					t.Fatal(err)
				}
			}
			if u, _ := v.Usage(ctx); u.Blocks != 7 {
				t.Errorf("Usage before a full Index = %+v, want the 7 blocks written through the volume", u)
			}
			var got []string
			err := v.Index(ctx, "", func(bi keepstore.BlockInfo) error {
				got = append(got, bi.Hash)
				st, err := v.Stat(ctx, bi.Hash)
				if err != nil || !st.Mtime.Equal(bi.Mtime) || st.Size != bi.Size {
					t.Errorf("Index gives %+v, Stat %+v, %v", bi, st, err)
				}
				return nil
			})
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("Index = %q, %v; want %q", got, err, want)
			}
			if u, _ := v.Usage(ctx); u.Blocks != 10 {
				t.Errorf("Usage after a full Index = %+v, want 10 blocks", u)
			}
			// An index of one hex digit's blocks, as keepstore reads
			// several volumes, corrects that digit's counts.
			late := []byte("behind its back, after the index")
			rawPut(key(hashOf(late)), late)
			v.Index(ctx, hashOf(late)[:2], func(keepstore.BlockInfo) error { return nil })
			if u, _ := v.Usage(ctx); u.Blocks != 10 {
				t.Errorf("Usage after an Index of 2 digits = %+v, want 10 blocks still", u)
			}
			v.Index(ctx, hashOf(late)[:1], func(keepstore.BlockInfo) error { return nil })
			if u, _ := v.Usage(ctx); u.Blocks != 11 {
				t.Errorf("Usage after an Index of the digit %s = %+v, want 11 blocks", hashOf(late)[:1], u)
			}
			for _, p := range []string{want[0][:1], want[3][:2], want[5][:4], want[9]} {
				got = got[:0]
				v.Index(ctx, p, func(bi keepstore.BlockInfo) error {
					got = append(got, bi.Hash)
					return nil
				})
				var wantP []string
				for _, h := range want {
					if strings.HasPrefix(h, p) {
						wantP = append(wantP, h)
					}
				}
				if !slices.Equal(got, wantP) {
					t.Errorf("Index(%q) = %q, want %q", p, got, wantP)
				}
			}
		})
	}
}

// counting counts the requests that reach the store.
type counting struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// A read-only volume refuses every change with ErrReadOnly without
// asking the store, and without reading a body; it still serves reads.
func TestReadOnly(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t)
	data := []byte("read-only")
	h := hashOf(data)
	w := newVolume(t, srv, s3volume.Options{Bucket: bucket})
	if err := w.Put(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	hc := srv.HTTPClient()
	defer hc.CloseIdleConnections()
	store := &counting{rt: hc.Transport}
	v, err := s3volume.Open(ctx, s3volume.Options{
		Bucket: bucket, Endpoint: s3test.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
		ReadOnly: true, HTTPClient: &http.Client{Transport: store},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.UUID() != w.UUID() {
		t.Errorf("read-only volume's uuid %s, the bucket's %s", v.UUID(), w.UUID())
	}
	other := []byte("never written")
	body := &volumetest.CountingReader{R: bytes.NewReader(other)}
	asked := store.n.Load()
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"Put", func() error { return v.Put(ctx, hashOf(other), body, int64(len(other))) }},
		{"Put unknown size", func() error { return v.Put(ctx, hashOf(other), body, -1) }},
		{"Touch", func() error { return v.Touch(ctx, h) }},
		{"Trash", func() error { return v.Trash(ctx, h, time.Now(), time.Now().Add(time.Hour)) }},
		{"Untrash", func() error { return v.Untrash(ctx, h) }},
		{"EmptyTrash", func() error { _, err := v.EmptyTrash(ctx, time.Now()); return err }},
	} {
		if err := op.do(); !errors.Is(err, keepstore.ErrReadOnly) {
			t.Errorf("%s on a read-only volume = %v, want ErrReadOnly", op.name, err)
		}
	}
	if n := store.n.Load() - asked; n != 0 {
		t.Errorf("refusing changes sent %d requests to the store", n)
	}
	if body.Reads() != 0 {
		t.Errorf("a refused Put read its body %d times", body.Reads())
	}
	if got := readBack(t, v, h); !bytes.Equal(got, data) {
		t.Errorf("read-only volume reads %q", got)
	}
}
