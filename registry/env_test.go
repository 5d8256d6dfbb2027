package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/pgtest"
	"github.com/keepproject/keep/locator"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a registry served over loopback, with a token of each scope.
type env struct {
	t      *testing.T
	store  *Store
	srv    *httptest.Server
	clock  *clock
	signer locator.Signer
	tokens map[apiauth.Scope]string
}

// forEachStore runs f on a registry over SQLite, and over PostgreSQL
// where it is installed.
func forEachStore(t *testing.T, f func(t *testing.T, dsn func(t *testing.T) string)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, func(t *testing.T) string { return filepath.Join(t.TempDir(), "registry.db") })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.Start(t)
		f(t, func(*testing.T) string { return dsn })
	})
}

func newEnv(t *testing.T, dsn string, mod func(*Config)) *env {
	t.Helper()
	store, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{
		t: t, store: store,
		clock:  &clock{now: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)},
		signer: locator.Signer{Key: []byte("the blob signing key"), TTL: time.Hour},
		tokens: map[apiauth.Scope]string{},
	}
	for _, sc := range []apiauth.Scope{apiauth.ScopeRead, apiauth.ScopeWrite, apiauth.ScopeAdmin} {
		secret, err := store.CreateToken(context.Background(), sc.String()+"-token", sc, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[sc] = secret
	}
	cfg := Config{Store: store, ClusterID: "zzzzz", Signer: e.signer, DefaultReplication: 2, TrashLifetime: 24 * time.Hour, Now: e.clock.Now}
	if mod != nil {
		mod(&cfg)
	}
	e.srv = httptest.NewServer(NewHandler(cfg))
	t.Cleanup(e.srv.Close)
	return e
}

// do sends a request with token (none if "") and body (JSON-encoded
// unless it is a string or nil), and returns the status and the decoded
// answer.
func (e *env) do(method, path, token string, body any) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case string:
		r, ctype = bytes.NewBufferString(b), "application/x-www-form-urlencoded"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r, ctype = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("%s %s: answer is not a JSON object: %v", method, path, err)
	}
	return resp.StatusCode, out
}

// put "writes" data as a block server would: its locator signed for
// token, valid for the signing TTL from the fake clock's now.
func (e *env) put(data, token string) string {
	l := locator.New([]byte(data))
	return e.signer.Sign(l, token, e.clock.Now().Add(e.signer.TTL)).String()
}

// create makes a collection and returns it, failing the test unless the
// registry answers 200.
func (e *env) create(attrs map[string]any) map[string]any {
	e.t.Helper()
	status, c := e.do("POST", "/arvados/v1/collections", e.tokens[apiauth.ScopeWrite], map[string]any{"collection": attrs})
	if status != http.StatusOK {
		e.t.Fatalf("create %v: %d %v", attrs, status, c)
	}
	return c
}
