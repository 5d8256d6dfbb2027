package keepstore_test

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// A failed pull's reason, in GET /pull (which balance prints) and the
// log, is one line naming every source tried, and holds no signature
// even though the server signs what it asks its sources for.
func TestPullFailureRedacted(t *testing.T) {
	dst := start(t, keepstore.Config{SystemToken: sysToken, SigningKey: []byte("signing key"), SigningTTL: time.Hour})
	var gone []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gone = append(gone, "http://"+l.Addr().String())
		l.Close()
		keeptest.HoldPort(t, l.Addr().(*net.TCPAddr).Port)
	}
	missing := locator.New([]byte("nobody has this either")).String()
	if code, body := dst.sendJSON(t, "PUT", "/pull", []protocol.PullItem{{Locator: missing, Servers: gone}}); code != 200 {
		t.Fatalf("PUT /pull: %d %q", code, body)
	}
	waitWork(t, dst, "pull", 1)
	code, body, _ := dst.do(t, "GET", "/pull", sysToken, nil)
	var r protocol.ListReport
	if code != 200 || json.Unmarshal([]byte(body), &r) != nil {
		t.Fatalf("GET /pull: %d %q", code, body)
	}
	if len(r.Failures) != 1 {
		t.Fatalf("report %+v", r)
	}
	msg := r.Failures[0].Error
	if strings.Contains(msg, "+A") || strings.Contains(msg, "\n") || !strings.Contains(msg, gone[0]) || !strings.Contains(msg, gone[1]) {
		t.Errorf("failure reason %q: want one line naming %v, without a signature", msg, gone)
	}
}
