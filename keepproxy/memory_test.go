package keepproxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/keepproxy"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// TestProxyBuffersSizedAndReleased: block buffers are sized by the
// request, not a whole block each; they are kept for reuse while in use
// and recently used, and dropped with their memory released once idle.
func TestProxyBuffersSizedAndReleased(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	srv, px := startProxyWith(t, c, keepproxy.Options{MaxWrites: 2, MaxReads: 2}, nil)
	const size = 1 << 20
	var wg sync.WaitGroup
	// 20 concurrent PUTs, more than the two write slots: some get 503,
	// none push the buffers past the bound.
	statuses := make([]int, 20)
	for i := range statuses {
		wg.Go(func() {
			data := bytes.Repeat(fmt.Appendf(nil, "%02d", i), size/2)
			req, _ := http.NewRequest("PUT", srv.URL+"/"+locator.New(data).Hash, bytes.NewReader(data))
			req.Header.Set("Authorization", "Bearer tok")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 503:
		default:
			t.Errorf("PUT answered %d, want 200 or 503", s)
		}
	}
	if ok == 0 {
		t.Error("no PUT succeeded")
	}
	st := px.Stats()
	// Each PUT took buffers of 64 KiB, 128 KiB and 1 MiB as its body
	// arrived, reusing idle ones: a whole block each would be 1.3 GB.
	if bound := int64(len(statuses)) * 2 * size; st.BufferBytes == 0 || st.BufferBytes > bound {
		t.Errorf("after 1 MiB PUTs the proxy holds %d bytes of buffers, want 1 to %d", st.BufferBytes, bound)
	}
	if st.IdleBufferBytes != st.BufferBytes {
		t.Errorf("%d of %d buffer bytes idle after every request ended", st.IdleBufferBytes, st.BufferBytes)
	}

	// A GET with a size hint takes a buffer of that size.
	small := []byte("small block")
	c.Server(0).Store(small)
	req, _ := http.NewRequest("GET", srv.URL+"/"+locator.New(small).String(), nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	if grew := px.Stats().BufferBytes - st.BufferBytes; grew > 64<<10 {
		t.Errorf("a GET of %d bytes took %d bytes of buffer", len(small), grew)
	}

	released := 0
	keepproxy.SweepAfter(px, time.Second, func() { released++ })
	if st := px.Stats(); st.BufferBytes == 0 || released != 0 {
		t.Errorf("before the idle time: %d bytes held, %d releases; want some held, none released", st.BufferBytes, released)
	}
	keepproxy.SweepAfter(px, keepproxy.DefaultBufferIdle, func() { released++ })
	if st := px.Stats(); st.BufferBytes != 0 || released == 0 {
		t.Errorf("after the idle time: %d bytes held, %d releases; want 0 held and a release", st.BufferBytes, released)
	}
}
