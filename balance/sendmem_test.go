package balance

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/keepproject/keep/keepclient"

	"github.com/keepproject/keep/internal/heapstat"
)

var sendItems = flag.Int("senditems", 100_000, "items of each list TestSendMemory sends")

// sendPlan returns a plan of n pulls and n trash items for each server
// at urls, of blocks held by 8 other servers, as Compute makes them.
func sendPlan(t testing.TB, n int, urls ...string) *Plan {
	inv := NewInventory()
	for i := range 8 + len(urls) {
		svc := keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", i), Host: fmt.Sprintf("keep%d.example", i), Port: 25107, Type: keepclient.TypeDisk}
		if i >= 8 {
			u, err := url.Parse(urls[i-8])
			if err != nil {
				t.Fatal(err)
			}
			port, _ := strconv.Atoi(u.Port())
			svc.Host, svc.Port = u.Hostname(), port
		}
		inv.Servers = append(inv.Servers, Server{Service: svc, Mounts: []Mount{{UUID: fmt.Sprintf("zzzzz-nyw5e-%015d", i), AllowWrite: true, AllowTrash: true, Replication: 1}}, Complete: true})
	}
	p := &Plan{inv: inv, lists: make([]lists, len(inv.Servers))}
	for i := range n {
		h := fmt.Sprintf("%032x", i)
		for _, si := range []int{i % 8, (i + 3) % 8} {
			if err := inv.AddCopy(h, Copy{Server: si, Mount: inv.Servers[si].Mounts[0].UUID, Size: 1<<20 + int64(i%1000), Mtime: 1e18 + int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		id, _ := inv.s.lookup(hashOf(t, h))
		for k := 8; k < len(inv.Servers); k++ {
			l := &p.lists[k]
			l.has = true
			l.pulls = append(l.pulls, pullRef{block: id, vol: uint16(k)})
			l.trash = append(l.trash, trashRef{block: id, c: newCopyRec(i%8, 1e18+int64(i))})
		}
	}
	return p
}

func hashOf(t testing.TB, s string) hash {
	h, ok := parseHash([]byte(s))
	if !ok {
		t.Fatalf("%q is not a hash", s)
	}
	return h
}

// TestSendMemory: sending a plan's lists takes a bounded amount of
// memory, not a copy of them as JSON (json.Marshal of each list took 285
// bytes an item at 1,000,000 items).
// go test ./balance -run TestSendMemory -v -senditems 1000000 gives the
// figures of docs/performance.md.
func TestSendMemory(t *testing.T) {
	n := *sendItems
	var received int64
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		received += k
		mu.Unlock()
	}))
	defer srv.Close()
	p := sendPlan(t, n, srv.URL)
	// Collect often, so that the peak is what sending holds rather than
	// garbage awaiting a collection paced by the size of the plan.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	before := heapstat.Live()
	stop := heapstat.Peak()
	err := (&Client{Token: "sys", HTTP: srv.Client()}).Send(context.Background(), p)
	peak := stop()
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(p)
	perItem := float64(int64(peak-before)) / float64(2*n)
	t.Logf("%d pull + %d trash items, %d bytes sent: peak %d bytes (%.0f B/item) over the plan", n, n, received, int64(peak-before), perItem)
	if peak-before > 16<<20 {
		t.Errorf("sending took %d bytes (%.0f B/item); want at most 16 MiB", peak-before, perItem)
	}
}

// Send writes each list as json.Marshal would, sends no trash when it is
// withheld, and a list the server refuses is an error naming it.
func TestSendBodies(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]byte{}
	handler := func(refuse bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got[r.Host+r.URL.Path] = b
			mu.Unlock()
			if r.Header.Get("Authorization") != "Bearer sys" || r.Method != http.MethodPut {
				http.Error(w, "who?", http.StatusUnauthorized)
			}
			if refuse && r.URL.Path == "/trash" {
				http.Error(w, "no trash today", http.StatusBadRequest)
			}
		})
	}
	srv := httptest.NewServer(handler(false))
	defer srv.Close()
	refusing := httptest.NewServer(handler(true))
	defer refusing.Close()
	p := sendPlan(t, 3, srv.URL)
	c := &Client{Token: "sys", HTTP: srv.Client()}
	if err := c.Send(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	host := srv.Listener.Addr().String()
	for path, v := range map[string]any{"/pull": slices.Collect(p.Pulls(8)), "/trash": slices.Collect(p.Trash(8))} {
		want, _ := json.Marshal(v)
		if !bytes.Equal(got[host+path], want) {
			t.Errorf("%s: got %s, want %s", path, got[host+path], want)
		}
	}
	if len(got) != 2 {
		t.Errorf("sent to %d lists, want 2 (servers with no writable mount get none)", len(got))
	}

	p = sendPlan(t, 3, refusing.URL)
	if err := c.Send(context.Background(), p); err == nil || err.Error() != "PUT "+refusing.URL+"/trash: 400 Bad Request: no trash today" {
		t.Errorf("refused: %v", err)
	}
	p.TrashWithheld = true
	clear(got)
	if err := c.Send(context.Background(), p); err != nil || len(got) != 1 {
		t.Errorf("trash withheld: %v, sent %q", err, slices.Collect(maps.Keys(got)))
	}
	// A server that is not there: an error, and no writer left behind
	// (goleak).
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if err := c.Send(context.Background(), sendPlan(t, 1, gone.URL)); err == nil {
		t.Error("sent to a closed port")
	}
}
