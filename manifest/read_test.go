package manifest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/keepproject/keep/locator"
)

func TestWriteFile(t *testing.T) {
	store := newMemStore()
	foo := store.put([]byte("foo"))
	bar := store.put([]byte("bar"))
	signed := foo
	signed.Hints = []string{sig[1:]}
	tests := []struct {
		name    string
		segs    []Segment
		want    string
		fetches int
	}{
		{"empty", nil, "", 0},
		{"one", []Segment{{foo, 0, 3}}, "foo", 1},
		{"run in one block", []Segment{{foo, 2, 1}, {foo, 0, 2}, {signed, 1, 1}}, "ofoo", 1},
		{"two blocks", []Segment{{foo, 1, 2}, {bar, 0, 2}}, "ooba", 2},
		{"back and forth", []Segment{{foo, 0, 1}, {bar, 0, 1}, {foo, 1, 1}}, "fbo", 3},
		{"zero-length segment not fetched", []Segment{{foo, 0, 0}, {bar, 0, 3}}, "bar", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store.fetches = 0
			var buf bytes.Buffer
			if err := WriteFile(context.Background(), File{"f", tt.segs}, store.fetch, &buf); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("wrote %q, want %q", buf.String(), tt.want)
			}
			if store.fetches != tt.fetches {
				t.Errorf("%d fetches, want %d", store.fetches, tt.fetches)
			}
		})
	}
}

func TestWriteFileErrors(t *testing.T) {
	store := newMemStore()
	foo := store.put([]byte("foo"))
	errFetch := errors.New("no such block")
	errWrite := errors.New("disk full")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	short := func(ctx context.Context, l locator.Locator) ([]byte, error) { return []byte("fo"), nil }
	failing := func(ctx context.Context, l locator.Locator) ([]byte, error) { return nil, errFetch }

	tests := []struct {
		name  string
		ctx   context.Context
		seg   Segment
		fetch FetchFunc
		w     *failWriter
		want  string
		is    error
	}{
		{"fetch error", context.Background(), Segment{foo, 0, 3}, failing, nil, "no such block", errFetch},
		{"short block", context.Background(), Segment{foo, 0, 3}, short, nil, "got 2 bytes", nil},
		{"segment outside block", context.Background(), Segment{foo, 2, 2}, store.fetch, nil, "outside block", nil},
		{"write error", context.Background(), Segment{foo, 0, 3}, store.fetch, &failWriter{errWrite}, "disk full", errWrite},
		{"canceled", canceled, Segment{foo, 0, 3}, store.fetch, nil, "canceled", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w io.Writer = new(bytes.Buffer)
			if tt.w != nil {
				w = tt.w
			}
			err := WriteFile(tt.ctx, File{"f", []Segment{tt.seg}}, tt.fetch, w)
			if err == nil || !contains(err.Error(), tt.want) {
				t.Fatalf("WriteFile: %v, want error containing %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

type failWriter struct{ err error }

func (w *failWriter) Write(p []byte) (int, error) { return 0, w.err }
