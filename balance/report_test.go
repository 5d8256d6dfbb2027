package balance

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
)

// A server's pull report is untrusted: what is not a sane report is an
// error for that server, not a number balance acts on.
func TestPullReports(t *testing.T) {
	good := `{"items":2,"queued":0,"in_progress":0,"done":1,"skipped":0,"failed":1,"failures":[{"locator":"` + hashes[0] + `+3","mount_uuid":"m","error":"source down"}]}`
	tests := []struct {
		name   string
		status int
		body   string
		err    string // "" for a report
	}{
		{"a report", 200, good, ""},
		{"an Arvados keepstore: no such route", 400, "Bad Request", "400"},
		{"not JSON", 200, "<html>", "invalid character"},
		{"negative counts", 200, `{"items":-1}`, "impossible counts"},
		{"too many failures", 200, `{"failures":[` + strings.Repeat(`{},`, protocol.MaxReportedFailures) + `{}]}`, "impossible counts"},
		{"too big", 200, `{"failures":[{"error":"` + strings.Repeat("x", maxReportBody) + `"}]}`, "answer over"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/pull" || r.Header.Get("Authorization") != "Bearer sys" {
					http.Error(w, "wrong request", http.StatusTeapot)
					return
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			r := (&Client{Token: "sys"}).PullReports(context.Background(), []keepclient.Service{service(t, srv, i)})[0]
			if (r.Err == nil) != (tt.err == "") || r.Err != nil && !strings.Contains(r.Err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", r.Err, tt.err)
			}
			if tt.err == "" && (r.Failed != 1 || len(r.Failures) != 1 || r.Failures[0].Error != "source down") {
				t.Errorf("report %+v", r.ListReport)
			}
		})
	}
}

// StillShort names the failed pulls of blocks still under-replicated or
// lost, and only those.
func TestStillShort(t *testing.T) {
	s := cluster(2)
	p := compute(t, testInv{Servers: s, Copies: map[string][]Copy{hashes[0]: on(s, old, 0), hashes[1]: on(s, old, 0, 1)}},
		Want{hashes[0]: {3, 2}, hashes[1]: {3, 2}, hashes[2]: {3, 2}})
	for i, c := range []Class{Under, OK, Lost} {
		if st, _ := p.Block(hashes[i]); st.Class != c {
			t.Fatalf("block %d: %v, want %v", i, st.Class, c)
		}
	}
	fail := func(h, why string) protocol.ItemFailure {
		return protocol.ItemFailure{Locator: h + "+3+Afake@1", Error: why}
	}
	s0 := keepclient.Service{UUID: "zzzzz-bi6l4-000000000000000"}
	reports := []Report{
		{Service: s0, ListReport: ListReport{Failures: []protocol.ItemFailure{fail(hashes[1], "repaired since"), fail(hashes[0], "source down"), {Locator: "junk", Error: "?"}}}},
		{Service: s0, ListReport: ListReport{Failures: []protocol.ItemFailure{fail(hashes[2], "disk full")}}},
		{Service: s0, Err: fmt.Errorf("no report"), ListReport: ListReport{Failures: []protocol.ItemFailure{fail(hashes[0], "ignored")}}},
	}
	got := StillShort(p.Plan, reports)
	if len(got) != 2 || got[0].Locator != hashes[2]+"+3" && got[1].Locator != hashes[2]+"+3" {
		t.Fatalf("still short: %+v", got)
	}
	for _, f := range got {
		if f.Error != "source down" && f.Error != "disk full" {
			t.Errorf("%+v", f)
		}
	}
}
