package keepstore_test

import (
	"context"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/dirvolume"
)

// flakyVolume is a Directory whose first Puts fail with an I/O error, as
// from a disk or network filesystem hiccup; later ones work. A failing
// Put either refuses before reading anything or, if partial, fails
// after reading part of the block.
type flakyVolume struct {
	*dirvolume.Directory
	partial bool
	fails   atomic.Int32 // Puts still to fail
	puts    atomic.Int32 // Puts called
}

var _ keepstore.Volume = (*flakyVolume)(nil)

func (v *flakyVolume) Put(ctx context.Context, hash string, r io.Reader, size int64) error {
	v.puts.Add(1)
	if v.fails.Add(-1) < 0 {
		return v.Directory.Put(ctx, hash, r, size)
	}
	if v.partial {
		if _, err := r.Read(make([]byte, 4)); err != nil {
			return err
		}
	}
	return &fs.PathError{Op: "write", Path: filepath.Join(v.Root(), hash[:3], hash), Err: syscall.EIO}
}

// newClient returns a keepclient that writes to ts alone, as a disk
// service, pausing little between passes.
func newClient(t *testing.T, ts *testServer) *keepclient.Client {
	t.Helper()
	addr := ts.Listener.Addr().(*net.TCPAddr)
	kc, err := keepclient.New(keepclient.Options{
		Services: []keepclient.Service{{
			UUID: "zzzzz-bi6l4-000000000000000",
			Host: addr.IP.String(),
			Port: addr.Port,
			Type: keepclient.TypeDisk,
		}},
		Token:      token,
		Replicas:   1,
		RetryDelay: time.Millisecond,
		MaxPasses:  3,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

// TestClientRetriesTransientVolumeError runs our client against a real
// server whose only volume fails its first write. The server's 503
// carries Retry-After, which tells the client the failure is passing
// (without it the client takes 503 for "full" and gives up), so the
// client tries again and the write completes, as it does with the
// Arvados Python client, which retries every 503.
func TestClientRetriesTransientVolumeError(t *testing.T) {
	for _, tt := range []struct {
		name    string
		partial bool
	}{
		{"before reading the body", false},
		{"after reading part of the body", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vols := dirVolumes(t, 1)
			vol := &flakyVolume{Directory: mustDir(t, vols[0].Path), partial: tt.partial}
			vol.fails.Store(1)
			vols[0].Volume = vol
			ts := start(t, keepstore.Config{Volumes: vols})
			data := []byte("stored after a transient volume error: " + tt.name)

			res, err := newClient(t, ts).Put(t.Context(), data, keepclient.PutOptions{})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if res.Replicas != 1 {
				t.Errorf("Put stored %d replicas, want 1", res.Replicas)
			}
			if n := vol.puts.Load(); n != 2 {
				t.Errorf("volume saw %d writes, want 2 (one failure, one retry)", n)
			}
			if code, body, _ := ts.do(t, "GET", "/"+hashOf(data), "", nil); code != 200 || body != string(data) {
				t.Errorf("GET after Put = %d %q", code, body)
			}
			ts.waitLog(t, "input/output error")
		})
	}
}
