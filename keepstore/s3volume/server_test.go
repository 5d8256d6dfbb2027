package s3volume_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
	"github.com/keepproject/keep/keepstore/volumetest"
	"github.com/keepproject/keep/locator"
)

// serve runs a keepstore server on v.
func serve(t *testing.T, v *s3volume.Volume) *httptest.Server {
	t.Helper()
	ks, err := keepstore.New(keepstore.Config{
		Volumes:     []keepstore.VolumeConfig{{Volume: v, Path: v.String()}},
		SystemToken: "sys", SigningTTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ks)
	t.Cleanup(func() {
		srv.Close()
		ks.Close()
	})
	return srv
}

func do(t *testing.T, method, url, token string, body []byte) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if body == nil {
		req.Body = nil
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// keep server on an S3 volume, through HTTP: PUT, GET, HEAD, index,
// mounts, trash and untrash; with the store down, a retryable 503.
func TestServerOnS3(t *testing.T) {
	defer http.DefaultClient.CloseIdleConnections()
	s3srv := s3test.Start(t)
	v := newVolume(t, s3srv, s3volume.Options{PrefixLength: 3})
	srv := serve(t, v)
	data := bytes.Repeat([]byte("served from S3 "), 100000)
	loc := locator.New(data).String()
	if code, body, h := do(t, "PUT", srv.URL+"/"+hashOf(data), "tok", data); code != 200 || h.Get("X-Keep-Replicas-Stored") != "1" || !strings.HasPrefix(body, loc) {
		t.Fatalf("PUT: %d %q", code, body)
	}
	if code, body, _ := do(t, "GET", srv.URL+"/"+loc, "", nil); code != 200 || body != string(data) {
		t.Errorf("GET: %d, %d bytes", code, len(body))
	}
	if code, _, h := do(t, "HEAD", srv.URL+"/"+loc, "", nil); code != 200 || h.Get("Content-Length") != fmt.Sprint(len(data)) {
		t.Errorf("HEAD: %d", code)
	}
	if code, body, _ := do(t, "GET", srv.URL+"/index", "sys", nil); code != 200 || !strings.HasPrefix(body, loc+" ") || !strings.HasSuffix(body, "\n\n") {
		t.Errorf("index: %d %q", code, body)
	}
	if code, body, _ := do(t, "GET", srv.URL+"/mounts", "sys", nil); code != 200 || !strings.Contains(body, v.UUID()) {
		t.Errorf("mounts: %d %q", code, body)
	}
	if code, _, _ := do(t, "GET", srv.URL+"/"+locator.New([]byte("absent")).String(), "", nil); code != 404 {
		t.Errorf("GET of a missing block: %d", code)
	}
	// DELETE keeps a block newer than the signing TTL.
	if code, body, _ := do(t, "DELETE", srv.URL+"/"+loc, "sys", nil); code != 200 || !strings.Contains(body, `"copies_too_new": 1`) {
		t.Errorf("DELETE of a new block: %d %q", code, body)
	}

	s3srv.Stop()
	other := []byte("while the store is down")
	code, body, h := do(t, "PUT", srv.URL+"/"+hashOf(other), "tok", other)
	if code != 503 || h.Get("Retry-After") == "" {
		t.Errorf("PUT with the store down: %d %q Retry-After %q, want 503 with Retry-After", code, body, h.Get("Retry-After"))
	}
	if code, body, h := do(t, "GET", srv.URL+"/"+loc, "", nil); code != 503 || h.Get("Retry-After") == "" {
		t.Errorf("GET with the store down: %d %q, want 503 with Retry-After", code, body)
	}
	s3srv.Restart()
	if code, body, _ := do(t, "GET", srv.URL+"/"+loc, "", nil); code != 200 || body != string(data) {
		t.Errorf("GET after the store came back: %d", code)
	}
}

// The store stopped during concurrent writes, some of them mid-upload,
// and started again: every Put either succeeded, and its block is there
// whole after the restart, or failed retryably (neither full nor
// missing), and a block whose Put failed is absent or whole, never
// partial. Nothing is acknowledged that was not stored.
func TestStoreStoppedDuringWrites(t *testing.T) {
	s3srv := s3test.Start(t)
	v := newVolume(t, s3srv, s3volume.Options{})
	const writers, each = 4, 12
	var (
		mu      sync.Mutex
		acked   = map[string][]byte{}
		failed  = map[string][]byte{}
		stop    = make(chan struct{}) // closed at the 8th acknowledgement
		restart = make(chan struct{}) // closed at the first failure
		done    = make(chan struct{}) // closed when every writer is done
		once    [2]sync.Once
	)
	failedOnce := func() bool {
		select {
		case <-restart:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Past its share a writer goes on until a Put has failed, so
			// that writes still come when the store stops, however long
			// stopping it takes; 10 shares bound a store that never does.
			for i := 0; i < 10*each && (i < each || !failedOnce()); i++ {
				data := bytes.Repeat([]byte(fmt.Sprintf("writer %d block %d ", w, i)), 20000)
				err := v.Put(context.Background(), hashOf(data), bytes.NewReader(data), int64(len(data)))
				mu.Lock()
				switch {
				case err == nil:
					acked[hashOf(data)] = data
					if len(acked) == 8 {
						once[0].Do(func() { close(stop) })
					}
				case errors.Is(err, keepstore.ErrFull), errors.Is(err, keepstore.ErrNotFound):
					t.Errorf("Put with the store stopping: %v, want a retryable error", err)
				default:
					failed[hashOf(data)] = data
					once[1].Do(func() { close(restart) })
				}
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-stop:
	case <-done:
	}
	s3srv.Stop()
	select {
	case <-restart:
	case <-done:
	}
	s3srv.Restart()
	<-done
	if len(failed) == 0 {
		t.Error("no Put failed with the store stopped")
	}
	for h, data := range acked {
		got, err := volumetest.Read(t, v, h)
		if err != nil {
			t.Errorf("acknowledged block %s missing after the restart: %v", h, err)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("acknowledged block %s reads back %d bytes, want %d", h, len(got), len(data))
		}
	}
	for h, data := range failed {
		got, err := volumetest.Read(t, v, h)
		if errors.Is(err, keepstore.ErrNotFound) {
			continue
		} else if err != nil {
			t.Errorf("reading %s after the restart: %v", h, err)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("block %s, whose Put failed, is stored partly: %d bytes of %d", h, len(got), len(data))
		}
	}
	t.Logf("%d writes acknowledged, %d failed", len(acked), len(failed))
}
