package keepstore_test

import (
	"strings"
	"testing"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

// TestGuardsBeforeReadSlots: a request the route's guard refuses is
// refused as such while every read slot is taken, rather than answered
// 503 "server busy", which tells a client to try again later: a client
// with the wrong token learns it at once. Only a request the guard lets
// through is busy.
func TestGuardsBeforeReadSlots(t *testing.T) {
	key := []byte("signing key")
	ts := start(t, keepstore.Config{SystemToken: sysToken, SigningKey: key, RequireSignatures: true})
	signed, _ := ts.put(t, []byte("guarded"))
	loc := locator.New([]byte("guarded")).String()
	uuid := ts.status(t).Volumes[0].ID
	release := keepstore.TakeReadSlots(ts.srv)
	defer release()
	tests := []struct {
		method, path string
		good         string // the token that opens the route
		refusals     map[string]int
	}{
		{"GET", "/index", sysToken, map[string]int{"": 401, mgmtToken: 403}},
		{"GET", "/mounts/" + uuid + "/blocks", sysToken, map[string]int{"": 401, mgmtToken: 403}},
		{"PUT", "/untrash/" + loc, sysToken, map[string]int{"": 401, mgmtToken: 403}},
		{"TOUCH", "/" + loc, sysToken, map[string]int{"": 401, mgmtToken: 403}},
		{"DELETE", "/" + loc, sysToken, map[string]int{"": 401, mgmtToken: 403}},
		{"GET", "/" + signed, token, map[string]int{"": 401, "other": 400}},
		{"HEAD", "/" + signed, token, map[string]int{"": 401, "other": 400}},
	}
	for _, tt := range tests {
		name := tt.method + " " + tt.path
		for tok, want := range tt.refusals {
			if code, msg, _ := ts.do(t, tt.method, tt.path, tok, nil); code != want {
				t.Errorf("%s with token %q while busy: %d %q, want %d", name, tok, code, msg, want)
			}
		}
		code, msg, h := ts.do(t, tt.method, tt.path, tt.good, nil)
		if code != 503 || h.Get("Retry-After") != "1" || tt.method != "HEAD" && !strings.Contains(msg, "server busy") {
			t.Errorf("%s while busy: %d %q Retry-After %q, want 503 server busy with Retry-After 1", name, code, msg, h.Get("Retry-After"))
		}
	}
	release()
	if code, _, _ := ts.do(t, "GET", "/index", sysToken, nil); code != 200 {
		t.Errorf("GET /index once the slots are free: %d, want 200", code)
	}
}
