package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

func TestAuthorization(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "r.db"), nil)
	if err := e.store.RevokeToken(context.Background(), "write-token", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	read, admin := e.tokens[apiauth.ScopeRead], e.tokens[apiauth.ScopeAdmin]
	revoked := e.tokens[apiauth.ScopeWrite]
	tests := []struct {
		method, path, token string
		body                any
		status              int
	}{
		{"GET", "/discovery/v1/apis/arvados/v1/rest", "", nil, 200},
		{"GET", "/arvados/v1/collections", "", nil, 401},
		{"GET", "/arvados/v1/collections", "zzz", nil, 401},
		{"GET", "/arvados/v1/collections", revoked, nil, 401},
		{"GET", "/arvados/v1/collections", read, nil, 200},
		{"GET", "/arvados/v1/collections?api_token=" + read, "", nil, 200},
		{"POST", "/arvados/v1/collections", read, map[string]any{"collection": map[string]any{}}, 403},
		{"POST", "/arvados/v1/collections", revoked, map[string]any{"collection": map[string]any{}}, 401},
		{"POST", "/arvados/v1/collections", admin, map[string]any{"collection": map[string]any{}}, 200},
		{"GET", "/arvados/v1/users/current", "", nil, 401},
		{"GET", "/arvados/v1/keep_services/accessible", read, nil, 200},
		{"GET", "/arvados/v1/nothing", read, nil, 404},
	}
	for _, tt := range tests {
		status, body := e.do(tt.method, tt.path, tt.token, tt.body)
		if status != tt.status {
			t.Errorf("%s %s: %d %v, want %d", tt.method, tt.path, status, body, tt.status)
		}
		if status >= 400 {
			if errs, _ := body["errors"].([]any); len(errs) != 1 {
				t.Errorf("%s %s: error answer %v has no errors list", tt.method, tt.path, body)
			}
		}
	}
	for sc, tok := range map[apiauth.Scope]string{apiauth.ScopeRead: read, apiauth.ScopeAdmin: admin} {
		status, u := e.do("GET", "/arvados/v1/users/current", tok, nil)
		if status != 200 || u[apiauth.ScopeField] != sc.String() || u["is_admin"] != (sc == apiauth.ScopeAdmin) || u["is_active"] != true {
			t.Errorf("users/current for %s: %d %v", sc, status, u)
		}
	}
}

func TestCollections(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn func(*testing.T) string) {
		e := newEnv(t, dsn(t), nil)
		write, read := e.tokens[apiauth.ScopeWrite], e.tokens[apiauth.ScopeRead]
		signedText := ". " + e.put("foo", write) + " " + e.put("bar", write) + " 0:3:foo.txt 3:3:bar.txt\n"
		m, err := manifest.Parse(signedText)
		if err != nil {
			t.Fatal(err)
		}
		c := e.create(map[string]any{"name": "results", "manifest_text": signedText, "replication_desired": 3})
		uuid, _ := c["uuid"].(string)
		if !protocol.IsUUID(uuid) || !strings.HasPrefix(uuid, "zzzzz-4zz18-") {
			t.Fatalf("uuid %q", uuid)
		}
		if c["portable_data_hash"] != m.PortableDataHash() || c["replication_desired"] != 3.0 || c["name"] != "results" {
			t.Errorf("created: %v", c)
		}
		stored, err := e.store.Get(context.Background(), uuid)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored.ManifestText, "+A") {
			t.Errorf("stored manifest holds signatures: %q", stored.ManifestText)
		}

		// A reader gets the manifest signed for its own token, valid for
		// the TTL from now.
		e.clock.Add(10 * time.Minute)
		status, got := e.do("GET", "/arvados/v1/collections/"+uuid, read, nil)
		if status != 200 {
			t.Fatalf("get: %d %v", status, got)
		}
		checkSigned(t, e, got["manifest_text"].(string), read, e.clock.Now())
		if got["file_count"] != 2.0 || got["file_size_total"] != 6.0 {
			t.Errorf("file_count %v, file_size_total %v", got["file_count"], got["file_size_total"])
		}
		// By portable data hash too.
		status, got = e.do("GET", "/arvados/v1/collections/"+m.PortableDataHash(), read, nil)
		if status != 200 || got["uuid"] != uuid {
			t.Errorf("get by pdh: %d %v", status, got)
		}

		// Names are unique among collections not in the trash.
		status, got = e.do("POST", "/arvados/v1/collections", write, map[string]any{"collection": map[string]any{"name": "results"}})
		if status != http.StatusUnprocessableEntity {
			t.Errorf("second collection named results: %d %v", status, got)
		}
		status, got = e.do("POST", "/arvados/v1/collections", write, map[string]any{"collection": map[string]any{"name": "results"}, "ensure_unique_name": true})
		if status != 200 || !strings.HasPrefix(got["name"].(string), "results (") {
			t.Errorf("with ensure_unique_name: %d %v", status, got)
		}

		// Update: replication to the default, then trash and untrash.
		status, got = e.do("PATCH", "/arvados/v1/collections/"+uuid, write, map[string]any{"collection": map[string]any{"replication_desired": nil}})
		if status != 200 || got["replication_desired"] != nil {
			t.Errorf("update replication to null: %d %v", status, got)
		}
		status, got = e.do("POST", "/arvados/v1/collections/"+uuid+"/trash", write, nil)
		if status != 200 || got["is_trashed"] != true || got["delete_at"] == nil {
			t.Errorf("trash: %d %v", status, got)
		}
		if status, got = e.do("GET", "/arvados/v1/collections/"+uuid, read, nil); status != 404 {
			t.Errorf("get of a trashed collection: %d %v", status, got)
		}
		if status, _ = e.do("GET", "/arvados/v1/collections/"+uuid+"?include_trash=true", read, nil); status != 200 {
			t.Errorf("get of a trashed collection with include_trash: %d", status)
		}
		if n := listCount(t, e, url.Values{}); n != 1 {
			t.Errorf("list without include_trash: %d collections, want 1", n)
		}
		if n := listCount(t, e, url.Values{"include_trash": {"true"}}); n != 2 {
			t.Errorf("list with include_trash: %d collections, want 2", n)
		}
		status, got = e.do("POST", "/arvados/v1/collections/"+uuid+"/untrash", write, nil)
		if status != 200 || got["is_trashed"] != false || got["delete_at"] != nil {
			t.Errorf("untrash: %d %v", status, got)
		}
		// Deleted for good once delete_at has passed.
		e.do("DELETE", "/arvados/v1/collections/"+uuid, write, nil)
		e.clock.Add(24*time.Hour - time.Second)
		if n, err := e.store.DeleteExpired(context.Background(), e.clock.Now()); n != 0 || err != nil {
			t.Errorf("DeleteExpired before delete_at: %d, %v", n, err)
		}
		e.clock.Add(time.Second)
		if n, err := e.store.DeleteExpired(context.Background(), e.clock.Now()); n != 1 || err != nil {
			t.Errorf("DeleteExpired at delete_at: %d, %v", n, err)
		}
		if status, _ = e.do("GET", "/arvados/v1/collections/"+uuid+"?include_trash=true", read, nil); status != 404 {
			t.Errorf("get of a deleted collection: %d", status)
		}
	})
}

// checkSigned fails t unless every block of text carries a signature
// valid for token at now and expiring one TTL after now.
func checkSigned(t *testing.T, e *env, text, token string, now time.Time) {
	t.Helper()
	m, err := manifest.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Blocks() {
		if err := e.signer.Verify(l, token, now); err != nil {
			t.Errorf("%s: %v", l, err)
		}
		want := fmt.Sprintf("@%08x", now.Add(e.signer.TTL).Unix())
		if !strings.HasSuffix(l.String(), want) {
			t.Errorf("%s: want expiry %s", l, want)
		}
	}
}

func listCount(t *testing.T, e *env, q url.Values) int {
	t.Helper()
	status, got := e.do("GET", "/arvados/v1/collections?"+q.Encode(), e.tokens[apiauth.ScopeRead], nil)
	if status != 200 {
		t.Fatalf("list %v: %d %v", q, status, got)
	}
	return len(got["items"].([]any))
}

func TestCreateRefused(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "r.db"), nil)
	write, read := e.tokens[apiauth.ScopeWrite], e.tokens[apiauth.ScopeRead]
	foo := locator.New([]byte("foo"))
	expired := e.signer.Sign(foo, write, e.clock.Now().Add(-time.Second)).String()
	tests := []struct {
		name string
		body any
		want string // part of the error
	}{
		{"unsigned block", map[string]any{"collection": map[string]any{"manifest_text": ". " + foo.String() + " 0:3:foo\n"}}, "no permission signature"},
		{"signed for another token", map[string]any{"collection": map[string]any{"manifest_text": ". " + e.put("foo", read) + " 0:3:foo\n"}}, "invalid signature"},
		{"expired signature", map[string]any{"collection": map[string]any{"manifest_text": ". " + expired + " 0:3:foo\n"}}, "expired"},
		{"bad manifest", map[string]any{"collection": map[string]any{"manifest_text": "not a manifest"}}, "manifest_text"},
		{"wrong pdh", map[string]any{"collection": map[string]any{"portable_data_hash": "d41d8cd98f00b204e9800998ecf8427e+1"}}, "does not match"},
		{"replication 0", map[string]any{"collection": map[string]any{"replication_desired": 0}}, "replication_desired 0"},
		{"replication 101", map[string]any{"collection": map[string]any{"replication_desired": 101}}, "replication_desired 101"},
		{"name with a slash", map[string]any{"collection": map[string]any{"name": "a/b"}}, "holds a /"},
		{"name like a uuid", map[string]any{"collection": map[string]any{"name": "zzzzz-4zz18-012345678901234"}}, "looks like a uuid"},
		{"unknown attribute", map[string]any{"collection": map[string]any{"colour": "red"}}, "colour"},
		{"no attributes", map[string]any{}, `no "collection"`},
		{"properties not an object", map[string]any{"collection": map[string]any{"properties": []int{1}}}, "properties must be"},
		{"delete before trash", map[string]any{"collection": map[string]any{"trash_at": "2027-01-02T00:00:00Z", "delete_at": "2027-01-01T00:00:00Z"}}, "before trash_at"},
		{"bad time", map[string]any{"collection": map[string]any{"trash_at": "soon"}}, "RFC 3339"},
		{"empty storage classes", map[string]any{"collection": map[string]any{"storage_classes_desired": []string{}}}, "empty"},
		{"not JSON", "collection=%7Bnot", "collection attributes"},
	}
	for _, tt := range tests {
		status, got := e.do("POST", "/arvados/v1/collections", write, tt.body)
		errs, _ := got["errors"].([]any)
		if status != http.StatusUnprocessableEntity || len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), tt.want) {
			t.Errorf("%s: %d %v, want 422 saying %q", tt.name, status, got, tt.want)
		}
	}
	if n := listCount(t, e, url.Values{"include_trash": {"true"}}); n != 0 {
		t.Errorf("%d collections after refused creates", n)
	}
}

func TestCreateForm(t *testing.T) {
	// arv-style clients send the attributes as a JSON string in a form.
	e := newEnv(t, filepath.Join(t.TempDir(), "r.db"), nil)
	text := ". " + e.put("foo", e.tokens[apiauth.ScopeWrite]) + " 0:3:foo\n"
	form := url.Values{"collection": {fmt.Sprintf(`{"name":"f","manifest_text":%q}`, text)}}
	status, got := e.do("POST", "/arvados/v1/collections", e.tokens[apiauth.ScopeWrite], form.Encode())
	if status != 200 || got["name"] != "f" || got["replication_desired"] != nil {
		t.Errorf("form create: %d %v", status, got)
	}
}

func TestTooLarge(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "r.db"), nil)
	body := map[string]any{"collection": map[string]any{"description": strings.Repeat("x", MaxRequestBytes)}}
	status, got := e.do("POST", "/arvados/v1/collections", e.tokens[apiauth.ScopeWrite], body)
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d %v", status, got)
	}
}

func TestDiscoveryAndServices(t *testing.T) {
	svcFile := filepath.Join(t.TempDir(), "services.json")
	e := newEnv(t, filepath.Join(t.TempDir(), "r.db"), func(c *Config) { c.ServicesFile = svcFile })
	status, d := e.do("GET", "/discovery/v1/apis/arvados/v1/rest", "", nil)
	if status != 200 || d["blobSignatureTtl"] != 3600.0 || d["defaultCollectionReplication"] != 2.0 || d["uuidPrefix"] != "zzzzz" {
		t.Errorf("discovery: %d %v", status, d)
	}
	read := e.tokens[apiauth.ScopeRead]
	if status, got := e.do("GET", "/arvados/v1/keep_services/accessible", read, nil); status != 500 {
		t.Errorf("services with the file missing: %d %v", status, got)
	}
	list := `{"items":[{"uuid":"zzzzz-bi6l4-000000000000000","service_host":"127.0.0.1","service_port":9,"service_ssl_flag":false,"service_type":"disk"}]}`
	if err := os.WriteFile(svcFile, []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	status, got := e.do("GET", "/arvados/v1/keep_services/accessible", read, nil)
	if items, _ := got["items"].([]any); status != 200 || len(items) != 1 {
		t.Errorf("services: %d %v", status, got)
	}
	// Changed on disk: served at once.
	if err := os.WriteFile(svcFile, []byte(`{"items": "no"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, got := e.do("GET", "/arvados/v1/keep_services/accessible", read, nil); status != 500 {
		t.Errorf("services from a malformed file: %d %v", status, got)
	}
}
