package balance

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"

	"github.com/keepproject/keep/internal/heapstat"
)

var sendItems = flag.Int("senditems", 100_000, "items of each list TestSendMemory sends")

// sendPlan returns a plan of n pulls and n trash items for the server
// at u, as Compute makes them.
func sendPlan(u string, n int) *Plan {
	p := &Plan{Pulls: map[string][]PullItem{u: make([]PullItem, n)}, Trash: map[string][]TrashItem{u: make([]TrashItem, n)}}
	servers := make([][]string, 8)
	for i := range servers {
		servers[i] = []string{fmt.Sprintf("http://keep%d.example:25107", i), fmt.Sprintf("http://keep%d.example:25107", (i+3)%8)}
	}
	for i := range n {
		loc := fmt.Sprintf("%032x+%d", i, 1<<20+i%1000)
		mount := fmt.Sprintf("zzzzz-nyw5e-00000000000000%d", i%4)
		p.Pulls[u][i] = PullItem{Locator: loc, Servers: servers[i%8], MountUUID: mount}
		p.Trash[u][i] = TrashItem{Locator: loc, BlockMtime: 1e18 + int64(i), MountUUID: mount}
	}
	return p
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
	p := sendPlan(srv.URL, n)
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

// Send writes each list as json.Marshal would, and a list the server
// refuses is an error naming it.
func TestSendBodies(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = b
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer sys" || r.Method != http.MethodPut {
			http.Error(w, "who?", http.StatusUnauthorized)
		}
		if r.URL.Path == "/refuse/trash" {
			http.Error(w, "no trash today", http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	p := sendPlan(srv.URL, 3)
	p.Pulls[srv.URL+"/empty"] = []PullItem{}
	c := &Client{Token: "sys", HTTP: srv.Client()}
	if err := c.Send(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	for path, v := range map[string]any{"/pull": p.Pulls[srv.URL], "/trash": p.Trash[srv.URL], "/empty/pull": []PullItem{}} {
		want, _ := json.Marshal(v)
		if !bytes.Equal(got[path], want) {
			t.Errorf("%s: got %s, want %s", path, got[path], want)
		}
	}
	err := c.Send(context.Background(), &Plan{Trash: map[string][]TrashItem{srv.URL + "/refuse": nil}})
	if err == nil || err.Error() != "PUT "+srv.URL+"/refuse/trash: 400 Bad Request: no trash today" {
		t.Errorf("refused: %v", err)
	}
	if string(got["/refuse/trash"]) != "null" {
		t.Errorf("nil list sent as %q", got["/refuse/trash"])
	}
	// A server that is not there: an error, and no writer left behind
	// (goleak).
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if err := c.Send(context.Background(), &Plan{Pulls: map[string][]PullItem{gone.URL: {}}}); err == nil {
		t.Error("sent to a closed port")
	}
}
