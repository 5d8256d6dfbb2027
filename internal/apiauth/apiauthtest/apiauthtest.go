// Package apiauthtest is a fake token registry for tests: an HTTPS
// server on loopback answering GET /arvados/v1/users/current as the
// registry (or an Arvados API server) does, for the tokens a test gives
// it.
package apiauthtest

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keepproject/keep/internal/apiauth"
)

// Registry is a fake token registry. It is safe for concurrent use.
type Registry struct {
	// Server is the HTTPS server, on 127.0.0.1, closed when the test
	// ends.
	Server *httptest.Server

	mu       sync.Mutex
	users    map[string]answer
	requests int
	asked    map[string]int // by token
}

// answer is what users/current says for one token.
type answer struct {
	scope apiauth.Scope // ScopeNone: no keep_scope field (Arvados)
	admin bool
	down  bool // answer 503 instead
}

// New starts a registry that knows no token yet.
func New(t testing.TB) *Registry {
	t.Helper()
	r := &Registry{users: map[string]answer{}, asked: map[string]int{}}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Server.Close)
	return r
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests++
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	r.asked[tok]++
	a, known := r.users[tok]
	r.mu.Unlock()
	switch {
	case req.Method != http.MethodGet || req.URL.Path != apiauth.CurrentUserPath:
		http.Error(w, "not found", http.StatusNotFound)
	case !ok || !known:
		http.Error(w, `{"errors":["Not logged in"]}`, http.StatusUnauthorized)
	case a.down:
		http.Error(w, "registry down for the test", http.StatusServiceUnavailable)
	default:
		u := map[string]any{"uuid": "zzzzz-tpzed-000000000000000", "is_admin": a.admin, "is_active": true}
		if a.scope != apiauth.ScopeNone {
			u[apiauth.ScopeField] = a.scope.String()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(u)
	}
}

// Set makes the registry know token with scope s; ScopeNone revokes it.
func (r *Registry) Set(token string, s apiauth.Scope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s == apiauth.ScopeNone {
		delete(r.users, token)
		return
	}
	r.users[token] = answer{scope: s, admin: s == apiauth.ScopeAdmin}
}

// SetArvados makes the registry answer for token as an Arvados API
// server does: a user object without keep_scope.
func (r *Registry) SetArvados(token string, admin bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users[token] = answer{admin: admin}
}

// SetDown makes the registry answer 503 for token, as a registry that
// cannot reach its database would.
func (r *Registry) SetDown(token string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users[token] = answer{down: true}
}

// Requests returns how many requests the registry has had.
func (r *Registry) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// Asked returns how many requests the registry has had about token.
func (r *Registry) Asked(token string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[token]
}

// Host returns the registry's host:port, as --registry takes it.
func (r *Registry) Host() string { return strings.TrimPrefix(r.Server.URL, "https://") }

// Checker returns a checker of the registry's tokens that trusts its
// certificate; opts.APIHost and opts.HTTPClient are filled in.
func (r *Registry) Checker(t testing.TB, opts apiauth.Options) *apiauth.Checker {
	t.Helper()
	opts.APIHost, opts.HTTPClient = r.Host(), r.Server.Client()
	c, err := apiauth.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CertFile writes the registry's certificate, PEM-encoded, to a file
// in a temporary directory and returns its path, for SSL_CERT_FILE.
func (r *Registry) CertFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registry-ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Server.Certificate().Raw})
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
