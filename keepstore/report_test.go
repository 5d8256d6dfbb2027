package keepstore_test

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// GET /pull tells the system token what became of the current pull
// list: counts, and each failure with its reason.
func TestPullReport(t *testing.T) {
	src := start(t, keepstore.Config{SystemToken: sysToken})
	dst := start(t, keepstore.Config{SystemToken: sysToken})
	data := bytes.Repeat([]byte("report me "), 1000)
	src.put(t, data)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := "http://" + l.Addr().String()
	l.Close()
	keeptest.HoldPort(t, l.Addr().(*net.TCPAddr).Port) // nothing answers there
	missing := locator.New([]byte("nobody has this")).String()
	list := []protocol.PullItem{
		{Locator: locator.New(data).String(), Servers: []string{src.URL}},
		{Locator: missing, Servers: []string{gone}, MountUUID: dst.status(t).Volumes[0].ID},
	}
	if code, body := dst.sendJSON(t, "PUT", "/pull", list); code != 200 {
		t.Fatalf("PUT /pull: %d %q", code, body)
	}
	waitWork(t, dst, "pull", 2)
	code, body, _ := dst.do(t, "GET", "/pull", sysToken, nil)
	var r protocol.ListReport
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("GET /pull: %d %q", code, body)
	}
	if r.Items != 2 || r.Done != 1 || r.Failed != 1 || !r.Finished() || len(r.Failures) != 1 {
		t.Fatalf("report %+v", r)
	}
	if f := r.Failures[0]; f.Locator != missing || f.MountUUID != list[1].MountUUID || !strings.Contains(f.Error, gone) {
		t.Errorf("failure %+v, want %s from %s", f, missing, gone)
	}
	for tok, want := range map[string]int{"": 401, "not-the-system-token": 403} {
		if code, _, _ := dst.do(t, "GET", "/pull", tok, nil); code != want {
			t.Errorf("GET /pull with token %q: %d, want %d", tok, code, want)
		}
	}
	// A new list starts a new report; GET /trash reports the trash list.
	if code, body := dst.sendJSON(t, "PUT", "/pull", []protocol.PullItem{}); code != 200 {
		t.Fatalf("PUT /pull: %d %q", code, body)
	}
	for _, path := range []string{"/pull", "/trash"} {
		code, body, _ := dst.do(t, "GET", path, sysToken, nil)
		if r := (protocol.ListReport{}); code != 200 || json.Unmarshal([]byte(body), &r) != nil || r.Items != 0 || r.Failed != 0 || r.Failures == nil {
			t.Errorf("GET %s: %d %q", path, code, body)
		}
	}
}
