package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/arvapi"
	"github.com/keepproject/keep/internal/protocol"
)

func TestListFilters(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn func(*testing.T) string) {
		e := newEnv(t, dsn(t), nil)
		write := e.tokens[apiauth.ScopeWrite]
		three, one := 3, 1
		for _, c := range []struct {
			name  string
			repl  *int
			trash bool
		}{{"alpha", &three, false}, {"Alpha2", nil, false}, {"beta", &one, false}, {"gamma%", nil, true}, {"delta", &three, true}} {
			e.clock.Add(time.Minute)
			attrs := map[string]any{"name": c.name}
			if c.repl != nil {
				attrs["replication_desired"] = *c.repl
			}
			got := e.create(attrs)
			if c.trash {
				e.do("POST", "/arvados/v1/collections/"+got["uuid"].(string)+"/trash", write, nil)
			}
		}
		e.clock.Add(time.Minute)
		tests := []struct {
			params url.Values
			want   []string // names, in order
		}{
			{url.Values{}, []string{"beta", "Alpha2", "alpha"}},
			{url.Values{"include_trash": {"true"}, "order": {`["name"]`}}, []string{"Alpha2", "alpha", "beta", "delta", "gamma%"}},
			{url.Values{"filters": {`[["is_trashed","=",true]]`}, "include_trash": {"true"}, "order": {"name"}}, []string{"delta", "gamma%"}},
			{url.Values{"filters": {`[["name","like","alpha%"]]`}}, []string{"alpha"}},
			{url.Values{"filters": {`[["name","ilike","alpha%"]]`}, "order": {"name desc"}}, []string{"alpha", "Alpha2"}},
			{url.Values{"filters": {`[["name","like","gamma\\%"]]`}, "include_trash": {"true"}}, []string{"gamma%"}},
			{url.Values{"filters": {`[["replication_desired","=",null]]`}, "order": {"name"}}, []string{"Alpha2"}},
			{url.Values{"filters": {`[["replication_desired",">=",2]]`}, "include_trash": {"true"}, "order": {"name"}}, []string{"alpha", "delta"}},
			{url.Values{"filters": {`[["replication_desired","in",[1,null]]]`}, "order": {"name"}}, []string{"Alpha2", "beta"}},
			{url.Values{"filters": {`[["replication_desired","not in",[3]]]`}, "order": {"name"}}, []string{"Alpha2", "beta"}},
			{url.Values{"filters": {`[["name","!=","beta"]]`}, "order": {"name"}}, []string{"Alpha2", "alpha"}},
			{url.Values{"filters": {`[["created_at",">","2026-12-06T12:02:30Z"]]`}, "include_trash": {"true"}, "order": {"created_at"}}, []string{"beta", "gamma%", "delta"}},
			{url.Values{"order": {`["replication_desired asc","name"]`}}, []string{"Alpha2", "beta", "alpha"}},
			{url.Values{"order": {"name"}, "limit": {"1"}, "offset": {"1"}}, []string{"alpha"}},
		}
		for _, tt := range tests {
			status, got := e.do("GET", "/arvados/v1/collections?"+tt.params.Encode(), e.tokens[apiauth.ScopeRead], nil)
			if status != 200 {
				t.Errorf("%v: %d %v", tt.params, status, got)
				continue
			}
			var names []string
			for _, it := range got["items"].([]any) {
				names = append(names, it.(map[string]any)["name"].(string))
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("%v: %q, want %q", tt.params, names, tt.want)
			}
		}
		// count=exact counts past the page; select trims the items.
		_, got := e.do("GET", "/arvados/v1/collections?limit=1&select=%5B%22uuid%22%5D", e.tokens[apiauth.ScopeRead], nil)
		item := got["items"].([]any)[0].(map[string]any)
		if got["items_available"] != 3.0 || len(item) != 1 || item["uuid"] == nil {
			t.Errorf("limit 1, select uuid: %v", got)
		}
	})
}

// TestArvapiReadsRegistry: keep balance's reader of an Arvados API
// server pages through the registry's collections, the trashed ones
// included, with the replication each wants.
func TestArvapiReadsRegistry(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn func(*testing.T) string) {
		store, err := Open(context.Background(), dsn(t))
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		now := time.Now()
		tok, err := store.CreateToken(context.Background(), "balance", apiauth.ScopeRead, now)
		if err != nil {
			t.Fatal(err)
		}
		const n = 250
		want := map[string]int{}
		for i := range n {
			c := Collection{UUID: newUUIDFor(i), Properties: "{}", StorageClassesDesired: []string{"default"},
				ManifestText: "", PortableDataHash: "d41d8cd98f00b204e9800998ecf8427e+0", CreatedAt: now, ModifiedAt: now}
			if i%3 == 0 {
				r := 1 + i%5
				c.ReplicationDesired = &r
				want[c.UUID] = r
			} else {
				want[c.UUID] = -1
			}
			if i%7 == 0 {
				tr, del := now.Add(-time.Hour), now.Add(time.Hour)
				c.TrashAt, c.DeleteAt = &tr, &del
			}
			if err := store.Create(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		srv := httptest.NewTLSServer(NewHandler(Config{Store: store, ClusterID: "zzzzz"}))
		defer srv.Close()
		api := arvapi.New(strings.TrimPrefix(srv.URL, "https://"), tok, true)
		defer api.Close()
		got := map[string]int{}
		err = api.Collections(context.Background(), func(c arvapi.Collection) error {
			got[c.UUID] = -1
			if c.ReplicationDesired != nil {
				got[c.UUID] = *c.ReplicationDesired
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Errorf("read %d collections, want %d (trashed ones included)", len(got), n)
		}
		for u, r := range want {
			if got[u] != r {
				t.Errorf("%s: replication %d, want %d", u, got[u], r)
			}
		}
	})
}

func newUUIDFor(i int) string {
	return fmt.Sprintf("zzzzz-4zz18-%015s", strconv.FormatInt(int64(i), 36))
}

// TestArvapiCollectionCalls: the client keep put, get and ls use creates,
// finds and reads collections in the registry.
func TestArvapiCollectionCalls(t *testing.T) {
	e := newEnv(t, t.TempDir()+"/r.db", nil)
	srv := httptest.NewTLSServer(e.srv.Config.Handler)
	defer srv.Close()
	write := e.tokens[apiauth.ScopeWrite]
	api := arvapi.New(strings.TrimPrefix(srv.URL, "https://"), write, true)
	defer api.Close()
	ctx := context.Background()
	three := 3
	text := ". " + e.put("foo", write) + " 0:3:foo\n"
	rec, err := api.Create(ctx, arvapi.NewCollection{Name: "foo set", ManifestText: text, ReplicationDesired: &three})
	if err != nil {
		t.Fatal(err)
	}
	if !protocol.IsUUID(rec.UUID) || rec.Name != "foo set" || *rec.ReplicationDesired != 3 {
		t.Errorf("created %+v", rec)
	}
	_, err = api.Create(ctx, arvapi.NewCollection{Name: "foo set", ManifestText: text})
	var se *arvapi.StatusError
	if !errors.As(err, &se) || se.Status != 422 || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second create of the name: %v", err)
	}
	for _, id := range []string{rec.UUID, rec.PortableDataHash} {
		got, err := api.Get(ctx, id)
		if err != nil || got.UUID != rec.UUID || !strings.Contains(got.ManifestText, "+A") {
			t.Errorf("Get(%s): %+v, %v", id, got, err)
		}
	}
	if got, err := api.Find(ctx, "foo set"); err != nil || got.UUID != rec.UUID {
		t.Errorf("Find: %+v, %v", got, err)
	}
	if _, err := api.Find(ctx, "bar set"); !errors.Is(err, arvapi.ErrNotFound) {
		t.Errorf("Find of a missing name: %v", err)
	}
	if _, err := api.Get(ctx, "zzzzz-4zz18-000000000000000"); !errors.Is(err, arvapi.ErrNotFound) {
		t.Errorf("Get of a missing uuid: %v", err)
	}
}
