package s3volume_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
)

// listPrefixes records the prefixes of the listing requests that go
// through it.
type listPrefixes struct {
	rt       http.RoundTripper
	mu       sync.Mutex
	prefixes []string
}

func (l *listPrefixes) RoundTrip(r *http.Request) (*http.Response, error) {
	if q := r.URL.Query(); r.Method == http.MethodGet && q.Get("list-type") == "2" {
		l.mu.Lock()
		l.prefixes = append(l.prefixes, q.Get("prefix"))
		l.mu.Unlock()
	}
	return l.rt.RoundTrip(r)
}

// split reports whether a listing request asked for a prefix of more
// than n hex digits below the keys' directory, as a listing in parts of
// one of n digits does.
func (l *listPrefixes) split(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.prefixes {
		p = strings.TrimPrefix(p, "recent/")
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			p = p[i+1:]
		}
		if len(p) > n {
			return true
		}
	}
	return false
}

// TestIndexInParts: an Index that lists its blocks in parts, several at
// a time, with pages small enough that every part takes several, passes
// on exactly what the listing of one page at a time does (hashes, sizes,
// the markers' times), for prefixes of every length, beside blocks
// without markers, markers without blocks and objects that are no
// blocks; and the counts at Open are the same.
func TestIndexInParts(t *testing.T) {
	srv := s3test.Start(t)
	raw := rawClient(t, srv)
	ctx := context.Background()
	for _, pl := range []int{0, 3} {
		t.Run(fmt.Sprint("prefix length ", pl), func(t *testing.T) {
			t.Parallel()
			bucket := srv.NewBucket(t)
			fillBucket(t, raw, bucket, pl, 600)
			key := func(h string) string {
				if pl > 0 {
					return h[:pl] + "/" + h
				}
				return h
			}
			var strays []string
			for i := range 5 {
				strays = append(strays, key(hashOf(fmt.Append(nil, "no marker ", i))), "recent/"+key(hashOf(fmt.Append(nil, "no block ", i))))
			}
			strays = append(strays, "README", key("0123"), "trash/"+key(hashOf([]byte("trashed"))))
			for _, k := range strays {
				if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &k, Body: bytes.NewReader([]byte(k))}); err != nil {
					t.Fatal(err)
				}
			}
			serial := newVolume(t, srv, s3volume.Options{Bucket: bucket, PrefixLength: pl, IndexConcurrency: 1, ReadOnly: true})
			want := listAll(t, serial, "")
			if len(want) != 605 {
				t.Fatalf("the serial listing has %d blocks, want 605", len(want))
			}
			h := want[len(want)/3].Hash
			for _, o := range []s3volume.Options{
				{IndexPageSize: 7, IndexConcurrency: 4},
				{IndexPageSize: 7, IndexConcurrency: 16},
				{IndexPageSize: 30, IndexConcurrency: 3},
			} {
				t.Run(fmt.Sprintf("pages of %d, %d at a time", o.IndexPageSize, o.IndexConcurrency), func(t *testing.T) {
					rec := &listPrefixes{rt: srv.HTTPClient().Transport}
					o.Bucket, o.PrefixLength, o.ReadOnly = bucket, pl, true
					o.HTTPClient = &http.Client{Transport: rec}
					v := newVolume(t, srv, o)
					if got, want := usage(t, v), usage(t, serial); got != want {
						t.Errorf("Usage after Open = %+v, want %+v", got, want)
					}
					for _, p := range []string{"", h[:1], h[:2], h[:3], h[:4], h, "fffff"} {
						got, want := listAll(t, v, p), listAll(t, serial, p)
						if !slices.Equal(got, want) {
							t.Errorf("Index(%q) in parts lists %d blocks, one page at a time %d:\n%v\n%v", p, len(got), len(want), head(got), head(want))
						}
					}
					if !rec.split(0) {
						t.Errorf("no listing request asked for a longer prefix than the Index: it was not split (%q)", rec.prefixes)
					}
				})
			}
		})
	}
}

// listAll returns a volume's listing of prefix.
func listAll(t *testing.T, v keepstore.Volume, prefix string) []keepstore.BlockInfo {
	t.Helper()
	var got []keepstore.BlockInfo
	if err := v.Index(context.Background(), prefix, func(b keepstore.BlockInfo) error {
		got = append(got, b)
		return nil
	}); err != nil {
		t.Fatalf("Index(%q): %v", prefix, err)
	}
	return got
}

func usage(t *testing.T, v keepstore.Volume) keepstore.Usage {
	t.Helper()
	u, err := v.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// head is the first blocks of a listing, for messages.
func head(bs []keepstore.BlockInfo) []keepstore.BlockInfo { return bs[:min(len(bs), 3)] }

// An Index in parts stops at fn's first error, and when its context is
// canceled, with every listing it started stopped (TestMain checks that
// no goroutine is left).
func TestIndexInPartsStops(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	fillBucket(t, rawClient(t, srv), bucket, 0, 100)
	v := newVolume(t, srv, s3volume.Options{Bucket: bucket, IndexPageSize: 3, IndexConcurrency: 8})
	stop := errors.New("stop")
	for _, after := range []int{1, 50} {
		calls := 0
		err := v.Index(context.Background(), "", func(keepstore.BlockInfo) error {
			if calls++; calls == after {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != after {
			t.Errorf("Index with fn failing at call %d = %v after %d calls", after, err, calls)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := v.Index(ctx, "", func(keepstore.BlockInfo) error {
		if calls++; calls == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Index canceled after 10 blocks = %v after %d calls, want context.Canceled", err, calls)
	}
}
