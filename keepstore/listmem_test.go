package keepstore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/heapstat"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/dirvolume"
)

// heldVolume is a Directory whose Trash waits until the server stops,
// so that a trash list stays queued while its memory is measured.
type heldVolume struct{ keepstore.Volume }

func (heldVolume) Trash(ctx context.Context, _ string, _, _ time.Time) error {
	<-ctx.Done()
	return ctx.Err()
}

// heldTransport answers no pull: it waits until the request ends, so
// that a pull list stays queued while its memory is measured.
type heldTransport struct{}

func (heldTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	<-r.Context().Done()
	return nil, r.Context().Err()
}

// writeLists writes a pull list or a trash list of n items to w, as
// keep balance sends them (2 source servers of 8 per pull item, one
// mount of 4 per item), generated as it goes so that the sender holds
// none of it.
func writeList(w io.Writer, pull bool, n int) error {
	bw := bufio.NewWriter(w)
	bw.WriteByte('[')
	for i := range n {
		if i > 0 {
			bw.WriteByte(',')
		}
		loc := fmt.Sprintf("%032x+%d", i, 1<<20+i%1000)
		mount := fmt.Sprintf("zzzzz-nyw5e-00000000000000%d", i%4)
		if pull {
			fmt.Fprintf(bw, `{"locator":%q,"servers":["http://keep%d.example:25107","http://keep%d.example:25107"],"mount_uuid":%q}`, loc, i%8, (i+3)%8, mount)
		} else {
			fmt.Fprintf(bw, `{"locator":%q,"block_mtime":%d,"mount_uuid":%q}`, loc, 1e18+int64(i), mount)
		}
	}
	bw.WriteByte(']')
	return bw.Flush()
}

// listMemory sends a server a pull list and a trash list of n items
// each, which its single held worker of each kind keeps queued, and
// returns the heap the server grew by per item while receiving (peak)
// and holding them (held).
func listMemory(t *testing.T, n int) (peak, held float64) {
	const sysToken = "systemtoken"
	mounts := make([]keepstore.VolumeConfig, 4)
	for i := range mounts {
		d, err := dirvolume.Open(t.TempDir(), dirvolume.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		mounts[i] = keepstore.VolumeConfig{Volume: heldVolume{d}, ID: fmt.Sprintf("zzzzz-nyw5e-00000000000000%d", i)}
	}
	ts := start(t, keepstore.Config{
		SystemToken: sysToken, Volumes: mounts, SigningTTL: time.Hour,
		TrashConcurrency: 1, PullConcurrency: 1,
		PullClient: &http.Client{Transport: heldTransport{}},
	})
	send := func(path string, pull bool) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeList(pw, pull, n)) }()
		defer pr.Close()
		req, err := http.NewRequest(http.MethodPut, ts.URL+path, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+sysToken)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %s", path, resp.Status)
		}
	}
	before := heapstat.Live()
	stop := heapstat.Peak()
	send("/pull", true)
	send("/trash", false)
	top := stop()
	after := heapstat.Live()
	var r protocol.ListReport
	for _, p := range []string{"/pull", "/trash"} {
		code, body, _ := ts.do(t, "GET", p, sysToken, nil)
		if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil || r.Items != n || r.Queued+r.InProgress != n {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}
	items := float64(2 * n)
	return float64(int64(top-before)) / items, float64(int64(after-before)) / items
}

var listItems = flag.Int("listitems", 50_000, "items of each list TestListMemory sends")

// TestListMemory: a server holds a pull list and a trash list in a few
// dozen bytes per item, and receives them without holding their JSON.
// go test ./keepstore -run TestListMemory -v -listitems 1000000 gives
// the figures of docs/performance.md.
func TestListMemory(t *testing.T) {
	n := *listItems
	peak, held := listMemory(t, n)
	t.Logf("%d pull + %d trash items: peak %.0f B/item, held %.0f B/item", n, n, peak, held)
	// 28 and 32 bytes an item, and the slack of the growing slices; the
	// peak adds the garbage of decoding between collections. Holding
	// the items as decoded took 181 B/item, receiving them 434.
	if held > 64 || peak > 192 {
		t.Errorf("peak %.0f B/item, held %.0f B/item: want at most 192 and 64", peak, held)
	}
}

// TestListRefused: a list over the bound is refused with 413, one that
// is not a JSON array of items with 400, whatever bad item comes before
// the fault, then one with a bad item with 400 naming it; a refused list
// leaves the current one in place. JSON null is an empty list.
func TestListRefused(t *testing.T) {
	const sysToken = "systemtoken"
	defer keepstore.SetMaxListBytes(1000)()
	ts := start(t, keepstore.Config{SystemToken: sysToken, PullClient: &http.Client{Transport: heldTransport{}}, PullConcurrency: 1})
	const good = `{"locator":"acbd18db4cc2f85cedef654fccc4a4d8+3","servers":["http://a:1"],"mount_uuid":"m"}`
	const bad = `{"locator":"acbd18db4cc2f85cedef654fccc4a4d8","servers":["http://a:1"]}`
	if code, body, _ := ts.do(t, "PUT", "/pull", sysToken, []byte("["+good+","+good+"]")); code != 200 || body != "Received 2 pull requests\n" {
		t.Fatalf("good list: %d %q", code, body)
	}
	for _, c := range []struct {
		list string
		code int
		body string
	}{
		{"[" + good + strings.Repeat(","+good, 12) + "]", 413, "list longer than 1000 bytes"},
		{"[" + bad + strings.Repeat(","+good, 12) + "]", 413, "list longer than 1000 bytes"},
		{"[" + good + "," + bad + ",{]", 400, "list is not a JSON array of items"},
		{`{"locator":"x"}`, 400, "list is not a JSON array of items: json: cannot unmarshal object into Go value of type []protocol.PullItem"},
		{"[" + good + "," + bad + "]", 400, "pull list item 1: locator \"acbd18db4cc2f85cedef654fccc4a4d8\" has no size"},
		{`[{"locator":"acbd18db4cc2f85cedef654fccc4a4d8+3","servers":["ftp://a"]}]`, 400, "pull list item 0: server \"ftp://a\" is not an http or https URL"},
		{`[null]`, 400, "pull list item 0:"},
	} {
		code, body, _ := ts.do(t, "PUT", "/pull", sysToken, []byte(c.list))
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%.60s: %d %q, want %d %q", c.list, code, body, c.code, c.body)
		}
	}
	var r protocol.ListReport
	if code, body, _ := ts.do(t, "GET", "/pull", sysToken, nil); code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Items != 2 {
		t.Errorf("after the refused lists: %d %s", code, body)
	}
	if code, body, _ := ts.do(t, "PUT", "/trash", sysToken, []byte(`[{"locator":"x"}]`)); code != 400 || !strings.Contains(body, "trash list item 0: invalid locator") {
		t.Errorf("bad trash list: %d %q", code, body)
	}
	for _, p := range []string{"/pull", "/trash"} {
		if code, body, _ := ts.do(t, "PUT", p, sysToken, []byte(" null ")); code != 200 || !strings.Contains(body, "Received 0 ") {
			t.Errorf("PUT %s null: %d %q", p, code, body)
		}
	}
}
