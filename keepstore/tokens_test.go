package keepstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/apiauth/apiauthtest"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

// Tokens the fake registry of these tests knows. Each holds "secret",
// which the server's log must never show.
const (
	readToken    = "read-secret-token"
	writeToken   = "write-secret-token"
	adminToken   = "admin-secret-token"
	arvadosToken = "v2/zzzzz-gj3su-000000000000001/arvados-secret-token"
	downToken    = "down-secret-token" // the registry answers 503
)

// newRegistry starts a fake registry knowing the tokens above.
func newRegistry(t *testing.T) *apiauthtest.Registry {
	reg := apiauthtest.New(t)
	reg.Set(readToken, apiauth.ScopeRead)
	reg.Set(writeToken, apiauth.ScopeWrite)
	reg.Set(adminToken, apiauth.ScopeAdmin)
	reg.SetArvados(arvadosToken, false)
	reg.SetDown(downToken)
	return reg
}

// TestTokenChecker: with a TokenChecker, GET and HEAD of blocks need a
// read token and PUT a write token (or the system token, which the
// registry is never asked about); unknown tokens get 401, too small a
// scope 403, a registry that cannot say 502; the management and admin
// routes keep their own rules; no token shows in the log.
func TestTokenChecker(t *testing.T) {
	reg := newRegistry(t)
	checker := reg.Checker(t, apiauth.Options{})
	defer checker.CloseIdleConnections()
	ts := start(t, keepstore.Config{SystemToken: sysToken, TokenChecker: checker})
	stored := []byte("a block stored with a write token")
	loc := locator.New(stored).String()
	if code, body, _ := ts.do(t, "PUT", "/"+hashOf(stored), writeToken, stored); code != 200 {
		t.Fatalf("PUT with a write token: %d %q", code, body)
	}
	fresh := func(name string) []byte { return []byte("a new block for " + name) }
	tests := []struct {
		name   string
		method string
		path   string // "" is the block: the stored one for reads, a fresh one for PUT
		tok    string
		want   int
	}{
		{"GET without a token", "GET", "", "", 401},
		{"GET unknown token", "GET", "", "zzz", 401},
		{"GET read token", "GET", "", readToken, 200},
		{"HEAD read token", "HEAD", "", readToken, 200},
		{"GET old-style path", "GET", "//" + loc, readToken, 200},
		{"GET write token", "GET", "", writeToken, 200},
		{"GET Arvados token", "GET", "", arvadosToken, 200},
		{"GET system token", "GET", "", sysToken, 200},
		{"GET registry down", "GET", "", downToken, 502},
		{"GET bad locator unknown token", "GET", "/nothex", "zzz", 401},
		{"GET bad locator read token", "GET", "/nothex", readToken, 400},
		{"PUT without a token", "PUT", "", "", 401},
		{"PUT unknown token", "PUT", "", "zzz", 401},
		{"PUT read token", "PUT", "", readToken, 403},
		{"PUT write token", "PUT", "", writeToken, 200},
		{"PUT admin token", "PUT", "", adminToken, 200},
		{"PUT Arvados token", "PUT", "", arvadosToken, 200},
		{"PUT system token", "PUT", "", sysToken, 200},
		{"PUT registry down", "PUT", "", downToken, 502},
		{"index with a write token", "GET", "/index", writeToken, 403},
		{"index with the system token", "GET", "/index", sysToken, 200},
		{"mounts with an admin token", "GET", "/mounts", adminToken, 403},
		{"DELETE with an admin token", "DELETE", "", adminToken, 403},
		{"health with the management token", "GET", "/_health/ping", mgmtToken, 200},
		{"status with a read token", "GET", "/_status", readToken, 403},
		{"OPTIONS", "OPTIONS", "", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, body := tt.path, []byte(nil)
			switch {
			case path == "" && tt.method == "PUT":
				body = fresh(tt.name)
				path = "/" + hashOf(body)
			case path == "":
				path = "/" + loc
			}
			code, got, _ := ts.do(t, tt.method, path, tt.tok, body)
			if code != tt.want {
				t.Fatalf("%d %q, want %d", code, got, tt.want)
			}
			switch {
			case tt.method == "GET" && path == "/"+loc && code == 200 && got != string(stored):
				t.Errorf("GET answered %q", got)
			case tt.method == "PUT" && code != 200:
				for _, d := range ts.dirs {
					if _, err := os.Stat(filepath.Join(d, hashOf(body)[:3], hashOf(body))); err == nil {
						t.Errorf("a refused PUT stored its block")
					}
				}
			case code == 502 && !strings.Contains(got, "token registry"):
				t.Errorf("502 says %q, want it to name the token registry", got)
			}
		})
	}
	if n := reg.Asked(sysToken); n != 0 {
		t.Errorf("the registry was asked %d times about the system token", n)
	}
	// Cached: one question per token, however often it was used; the
	// registry's failures are not cached.
	for _, tok := range []string{readToken, writeToken, arvadosToken, "zzz"} {
		if n := reg.Asked(tok); n != 1 {
			t.Errorf("the registry was asked %d times about %s, want 1", n, tok)
		}
	}
	if n := reg.Asked(downToken); n != 2 {
		t.Errorf("the registry was asked %d times about the token it could not check, want 2 (one per request)", n)
	}
	log := ts.log.String()
	if strings.Contains(log, "secret") {
		t.Errorf("a token is in the log:\n%s", log)
	}
	if !strings.Contains(log, "status=502") || !strings.Contains(log, "token registry "+reg.Host()) {
		t.Errorf("the log does not give the registry's failure:\n%s", log)
	}
}

// TestTokenCheckerRefusesBeforeBody: a PUT refused for its token is
// refused before its body is asked for, so a client sending
// "Expect: 100-continue" uploads nothing.
func TestTokenCheckerRefusesBeforeBody(t *testing.T) {
	reg := newRegistry(t)
	checker := reg.Checker(t, apiauth.Options{})
	defer checker.CloseIdleConnections()
	ts := start(t, keepstore.Config{TokenChecker: checker})
	data := []byte("never sent")
	for tok, want := range map[string]int{"zzz": 401, readToken: 403, downToken: 502} {
		req := "PUT /" + hashOf(data) + " HTTP/1.1\r\nHost: keep\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Length: 10\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
		code, body := ts.raw(t, req, true)
		// A "100 Continue" would be the response read here.
		if code != want {
			t.Errorf("PUT with %s: %d %q, want %d before the body", tok, code, body, want)
		}
	}
}

// TestTokenCheckerPull: servers checking tokens still pull blocks from
// each other: the pull carries the system token, which they do not ask
// the registry about.
func TestTokenCheckerPull(t *testing.T) {
	reg := newRegistry(t)
	checker := reg.Checker(t, apiauth.Options{})
	defer checker.CloseIdleConnections()
	key := []byte("shared blob signing key")
	src := start(t, keepstore.Config{SystemToken: sysToken, SigningKey: key, RequireSignatures: true, TokenChecker: checker})
	dst := start(t, keepstore.Config{SystemToken: sysToken, SigningKey: key, RequireSignatures: true, TokenChecker: checker})
	data := bytes.Repeat([]byte("pull me with tokens checked "), 1000)
	code, signed, _ := src.do(t, "PUT", "/"+hashOf(data), writeToken, data)
	if code != 200 {
		t.Fatalf("PUT: %d %q", code, signed)
	}
	list := []map[string]any{{"locator": locator.New(data).String(), "servers": []string{src.URL}}}
	if code, body := dst.sendJSON(t, "PUT", "/pull", list); code != 200 {
		t.Fatalf("PUT /pull: %d %q", code, body)
	}
	if st := waitWork(t, dst, "pull", 1); st.Done != 1 {
		t.Fatalf("pull status %+v, want 1 done", st)
	}
	// The signature is for the write token; a read token of the same
	// user would need its own, so read back with the writer's.
	if code, body, _ := dst.do(t, "GET", "/"+strings.TrimSpace(signed), writeToken, nil); code != 200 || body != string(data) {
		t.Errorf("pulled block read back: %d, %d bytes", code, len(body))
	}
	if n := reg.Asked(sysToken); n != 0 {
		t.Errorf("the registry was asked %d times about the system token", n)
	}
}
