package arvapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

// fakeAPI serves /arvados/v1/collections from cols the way the API
// server pages: ordered by uuid, after the "uuid >" filter, limit per
// page. Tweak, if set, rewrites a page before it is sent.
func fakeAPI(t *testing.T, token string, cols []Collection, tweak func(page []Collection) any) *httptest.Server {
	return fakeAPIHiding(t, token, cols, nil, tweak)
}

// fakeAPIHiding is fakeAPI listing the collections named in hidden (by
// uuid) only when the request sets the query parameter named beside
// each to "true", as the API server lists collections in the trash
// (include_trash) and old versions (include_old_versions).
func fakeAPIHiding(t *testing.T, token string, cols []Collection, hidden map[string]string, tweak func(page []Collection) any) *httptest.Server {
	sort.Slice(cols, func(i, j int) bool { return cols[i].UUID < cols[j].UUID })
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/arvados/v1/collections" || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized for "+r.Header.Get("Authorization"), http.StatusUnauthorized)
			return
		}
		after := ""
		if f := r.URL.Query().Get("filters"); f != "" {
			var filters [][]string
			if err := json.Unmarshal([]byte(f), &filters); err != nil || len(filters) != 1 || filters[0][0] != "uuid" || filters[0][1] != ">" {
				http.Error(w, "bad filters "+f, http.StatusBadRequest)
				return
			}
			after = filters[0][2]
		}
		var limit int
		fmt.Sscan(r.URL.Query().Get("limit"), &limit)
		page := []Collection{}
		for _, c := range cols {
			if param, ok := hidden[c.UUID]; ok && r.URL.Query().Get(param) != "true" {
				continue
			}
			if c.UUID > after && len(page) < limit {
				page = append(page, c)
			}
		}
		var out any = map[string]any{"items": page}
		if tweak != nil && len(page) > 0 {
			out = tweak(page)
		}
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func host(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "https://") }

func collections(n int) []Collection {
	var out []Collection
	for i := range n {
		c := Collection{UUID: fmt.Sprintf("zzzzz-4zz18-%015d", i), ManifestText: fmt.Sprintf(". %032x+%d 0:1:f%d\n", i, i, i)}
		if i%3 == 0 {
			r := i % 5
			c.ReplicationDesired = &r
		}
		out = append(out, c)
	}
	return out
}

func TestCollectionsPages(t *testing.T) {
	want := collections(2*PageSize + 50)
	srv := fakeAPI(t, "tok", want, nil)
	c := New(host(srv), "tok", true)
	defer c.Close()
	var got []Collection
	if err := c.Collections(context.Background(), func(col Collection) error {
		got = append(got, col)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d collections, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.UUID != w.UUID || g.ManifestText != w.ManifestText || (g.ReplicationDesired == nil) != (w.ReplicationDesired == nil) ||
			(w.ReplicationDesired != nil && *g.ReplicationDesired != *w.ReplicationDesired) {
			t.Errorf("collection %d = %+v, want %+v", i, g, w)
		}
	}
}

// The live set includes collections in the trash (recoverable until
// their delete_at, so their blocks must stay) and old versions: both
// are asked for on every page, and listed.
func TestCollectionsIncludeTrashAndOldVersions(t *testing.T) {
	cols := collections(2*PageSize + 3)
	hidden := map[string]string{}
	for i, c := range cols {
		switch i % 3 {
		case 1:
			hidden[c.UUID] = "include_trash"
		case 2:
			hidden[c.UUID] = "include_old_versions"
		}
	}
	srv := fakeAPIHiding(t, "tok", cols, hidden, nil)
	c := New(host(srv), "tok", true)
	defer c.Close()
	seen := map[string]bool{}
	if err := c.Collections(context.Background(), func(col Collection) error {
		seen[col.UUID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, col := range cols {
		if !seen[col.UUID] {
			what := "a live collection"
			if p, ok := hidden[col.UUID]; ok {
				what = "listed only with " + p + "=true"
			}
			t.Errorf("collection %s (%s) not seen", col.UUID, what)
		}
	}
}

// Every malformed or hostile answer is an error, never a shorter list.
func TestCollectionsBadAnswers(t *testing.T) {
	bad := -1
	tests := []struct {
		name  string
		token string
		tweak func([]Collection) any
		want  string
	}{
		{"wrong token", "other", nil, "401 Unauthorized"},
		{"no items", "tok", func([]Collection) any { return map[string]any{"kind": "arvados#collectionList"} }, "has no items"},
		{"not JSON", "tok", func([]Collection) any { return "<html>" }, "not the expected answer"},
		{"out of order", "tok", func(p []Collection) any {
			p[0], p[len(p)-1] = p[len(p)-1], p[0]
			return map[string]any{"items": p}
		}, "out of order"},
		{"repeats the last page", "tok", func(p []Collection) any {
			return map[string]any{"items": collections(3)}
		}, "out of order"},
		{"page over the limit", "tok", func(p []Collection) any {
			return map[string]any{"items": collections(PageSize + 1)}
		}, "on a page of"},
		{"negative replication", "tok", func(p []Collection) any {
			p[0].ReplicationDesired = &bad
			return map[string]any{"items": p}
		}, "wants -1 replicas"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeAPI(t, "tok", collections(5), tt.tweak)
			c := New(host(srv), tt.token, true)
			defer c.Close()
			n := 0
			err := c.Collections(context.Background(), func(Collection) error { n++; return nil })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			if tt.token != "tok" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
}
