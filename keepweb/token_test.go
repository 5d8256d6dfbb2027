package keepweb

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keepproject/keep/locator"
)

func TestTokens(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
	}{
		{"none", []string{"Authorization", ""}, http.StatusUnauthorized},
		{"bearer", []string{"Authorization", "Bearer " + testToken}, http.StatusOK},
		{"oauth2", []string{"Authorization", "OAuth2 " + testToken}, http.StatusOK},
		{"lower-case scheme", []string{"Authorization", "bearer " + testToken}, http.StatusOK},
		{"basic, token as the password", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+testToken))}, http.StatusOK},
		{"basic, no password", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(testToken+":"))}, http.StatusUnauthorized},
		{"unknown scheme", []string{"Authorization", "Digest " + testToken}, http.StatusUnauthorized},
		{"cookie", []string{"Authorization", "", "Cookie", tokenCookie + "=" + testToken}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := f.do(t, http.MethodGet, f.url("a.txt"), tc.headers...)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusUnauthorized && len(resp.Header.Values("WWW-Authenticate")) != 2 {
				t.Errorf("401 with WWW-Authenticate %q, want Bearer and Basic", resp.Header.Values("WWW-Authenticate"))
			}
		})
	}
}

// ?api_token= goes into a cookie, and the browser to the same URL
// without it.
func TestAPITokenRedirect(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for _, tc := range []struct{ query, location string }{
		{"api_token=" + testToken, ""},
		{"api_token=" + testToken + "&download=zip", "?download=zip"},
		{"x=1&api_token=" + testToken + "&y=%2F", "?x=1&y=%2F"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			u := f.url("with%20space/") + "?" + tc.query
			resp, _ := f.do(t, http.MethodGet, u, "Authorization", "")
			want := "/c=" + f.id + "/with%20space/" + tc.location
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
				t.Fatalf("%d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
			}
			var cookie *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == tokenCookie {
					cookie = c
				}
			}
			if cookie == nil || cookie.Value != testToken || !cookie.HttpOnly || cookie.Path != "/" {
				t.Fatalf("cookie %+v", cookie)
			}
			next, _ := url.Parse(f.srv.URL + resp.Header.Get("Location"))
			resp, body := f.do(t, http.MethodGet, next.String(), "Authorization", "", "Cookie", cookie.String())
			if resp.StatusCode != http.StatusOK {
				t.Errorf("following the redirect with the cookie: %d %s", resp.StatusCode, body)
			}
		})
	}
	if resp, _ := f.do(t, http.MethodGet, f.url("a.txt")+"?api_token=", "Authorization", ""); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty api_token: %d, want 400", resp.StatusCode)
	}
}

func TestAnonymousToken(t *testing.T) {
	f := newFixture(t, fixtureConfig{opts: func(o *Options) { o.AnonymousToken = testToken }})
	if resp, body := f.do(t, http.MethodGet, f.url("a.txt"), "Authorization", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("no token, with an anonymous one: %d %s", resp.StatusCode, body)
	}
}

// With signing on, the servers give only what the caller's token may
// read: the stored manifest is signed for testToken, and another token
// gets 403 for it; the blocks are read with the caller's own token.
func TestSignedReads(t *testing.T) {
	f := newFixture(t, fixtureConfig{sign: true})
	if !strings.Contains(f.id, "+A") {
		t.Fatalf("the manifest locator %s is not signed", f.id)
	}
	if resp, body := f.do(t, http.MethodGet, f.url("big.bin")); resp.StatusCode != http.StatusOK || len(body) != len(f.files["big.bin"]) {
		t.Errorf("right token: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, body := f.do(t, http.MethodGet, f.url("big.bin"), "Authorization", "Bearer someone-else"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("other token: %d, want 403: %s", resp.StatusCode, body)
	}
	// The signature stays out of pages and saved file names.
	if _, body := f.do(t, http.MethodGet, f.url("")); strings.Contains(string(body), "+A") {
		t.Errorf("the directory page shows the signature:\n%s", body)
	}
	if resp, _ := f.do(t, http.MethodGet, f.url("")+"?download=zip"); strings.Contains(resp.Header.Get("Content-Disposition"), "+A") {
		t.Errorf("the zip's name holds the signature: %s", resp.Header.Get("Content-Disposition"))
	}
	bare := f.srv.URL + "/c=" + f.id[:strings.Index(f.id, "+A")] + "/"
	if resp, body := f.do(t, http.MethodGet, bare); resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned manifest locator: %d, want 403: %s", resp.StatusCode, body)
	}
}

// fakeRegistry is a Collections that knows the fixture's collection by
// its portable data hash, a uuid and a name, and signs its manifest for
// the tokens it knows, as the registry does.
type fakeRegistry struct {
	f      **fixture
	tokens map[string]bool
}

func (r fakeRegistry) Manifest(_ context.Context, token, id string) (string, error) {
	f := *r.f
	switch {
	case !r.tokens[token]:
		return "", &statusError{http.StatusUnauthorized, fmt.Errorf("unknown token")}
	case id != f.m.PortableDataHash() && id != "zzzzz-4zz18-000000000000001" && id != "my collection":
		return "", fmt.Errorf("collection %s: %w", id, ErrNotFound)
	}
	m := f.m.MapBlocks(func(l locator.Locator) locator.Locator {
		signed, _ := locator.Parse(f.c.Sign(l.Bare().String(), token))
		return signed
	})
	return m.Text(), nil
}

func TestRegistry(t *testing.T) {
	var f *fixture
	reg := fakeRegistry{f: &f, tokens: map[string]bool{testToken: true, "reader-2": true}}
	f = newFixture(t, fixtureConfig{sign: true, opts: func(o *Options) { o.Collections = reg }})
	pdh := f.m.PortableDataHash()
	for _, tc := range []struct {
		id, token string
		status    int
	}{
		{pdh, testToken, http.StatusOK},
		{pdh, "reader-2", http.StatusOK}, // blocks signed for, and read with, reader-2
		{"zzzzz-4zz18-000000000000001", testToken, http.StatusOK},
		{"my%20collection", testToken, http.StatusOK},
		{pdh, "stranger", http.StatusUnauthorized},
		{"zzzzz-4zz18-000000000000002", testToken, http.StatusNotFound},
		{"no%20such%20name", testToken, http.StatusNotFound},
		{f.id, "stranger", http.StatusForbidden}, // not in the registry: the stored block, signed for testToken
	} {
		t.Run(tc.id+" "+tc.token, func(t *testing.T) {
			resp, body := f.do(t, http.MethodGet, f.srv.URL+"/c="+tc.id+"/big.bin", "Authorization", "Bearer "+tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusOK && string(body) != string(f.files["big.bin"]) {
				t.Errorf("got %d bytes, want %d", len(body), len(f.files["big.bin"]))
			}
		})
	}
}
