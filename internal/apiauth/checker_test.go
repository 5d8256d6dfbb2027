package apiauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/apiauth/apiauthtest"
)

// testToken is the token the tests check; no error may show it.
const testToken = "v2/zzzzz-gj3su-000000000000001/secretpartofthetokenthatmustnotleak"

// clock is a fake clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rawRegistry is a TLS server answering every request with the given
// status and body, counting them.
type rawRegistry struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
	auth     []string // Authorization headers seen
}

func newRawRegistry(t *testing.T, handler func(w http.ResponseWriter, r *http.Request)) *rawRegistry {
	t.Helper()
	rr := &rawRegistry{}
	rr.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr.mu.Lock()
		rr.requests++
		rr.auth = append(rr.auth, r.Header.Get("Authorization"))
		rr.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(rr.Close)
	return rr
}

func (rr *rawRegistry) count() int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.requests
}

func (rr *rawRegistry) checker(t *testing.T, clk *clock) *apiauth.Checker {
	t.Helper()
	c, err := apiauth.New(apiauth.Options{APIHost: strings.TrimPrefix(rr.URL, "https://"), HTTPClient: rr.Client(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// answer returns a handler answering status and body.
func answer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if status == http.StatusFound {
			w.Header().Set("Location", "https://elsewhere.example/")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}
}

// TestCheckAnswers: what each answer of the registry means, whether it
// is cached (a second check asks again only when it is not), and that
// errors are *UnavailableError without the token in their text.
func TestCheckAnswers(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    apiauth.Scope
		wantErr string // "" for no error; else part of the error text
	}{
		{"read", 200, `{"uuid":"zzzzz-tpzed-000000000000001","is_admin":false,"is_active":true,"keep_scope":"read"}`, apiauth.ScopeRead, ""},
		{"write", 200, `{"uuid":"zzzzz-tpzed-000000000000001","is_admin":false,"is_active":true,"keep_scope":"write"}`, apiauth.ScopeWrite, ""},
		{"admin", 200, `{"uuid":"zzzzz-tpzed-000000000000001","is_admin":true,"is_active":true,"keep_scope":"admin"}`, apiauth.ScopeAdmin, ""},
		{"scope decides, not is_admin", 200, `{"uuid":"zzzzz-tpzed-000000000000001","is_admin":true,"keep_scope":"read"}`, apiauth.ScopeRead, ""},
		{"Arvados user", 200, `{"uuid":"zzzzz-tpzed-000000000000001","is_admin":false,"is_active":true,"prefs":{"x":[1,2]}}`, apiauth.ScopeWrite, ""},
		{"Arvados admin", 200, `{"uuid":"zzzzz-tpzed-000000000000001","is_admin":true,"is_active":true}`, apiauth.ScopeAdmin, ""},
		{"Arvados inactive user", 200, `{"uuid":"zzzzz-tpzed-000000000000001","is_admin":false,"is_active":false}`, apiauth.ScopeNone, ""},
		{"unknown token", 401, `{"errors":["Not logged in"]}`, apiauth.ScopeNone, ""},
		{"forbidden token", 403, `{"errors":["Forbidden"]}`, apiauth.ScopeNone, ""},
		{"server error", 500, `{"errors":["oops"]}`, apiauth.ScopeNone, "answered 500 Internal Server Error"},
		{"unavailable", 503, ``, apiauth.ScopeNone, "answered 503"},
		{"not an API server", 404, `<html>`, apiauth.ScopeNone, "answered 404"},
		{"redirect", 302, ``, apiauth.ScopeNone, "answered 302"},
		{"not JSON", 200, `<html>captive portal</html>`, apiauth.ScopeNone, "not a JSON user object"},
		{"JSON array", 200, `[]`, apiauth.ScopeNone, "not a JSON user object"},
		{"truncated", 200, `{"uuid":"zzzzz-tpzed-0000`, apiauth.ScopeNone, "not a JSON user object"},
		{"no uuid", 200, `{"keep_scope":"admin"}`, apiauth.ScopeNone, "has no uuid"},
		{"wrong type", 200, `{"uuid":"u","keep_scope":7}`, apiauth.ScopeNone, "not a JSON user object"},
		{"unknown scope", 200, `{"uuid":"u","keep_scope":"owner"}`, apiauth.ScopeNone, `keep_scope "owner"`},
		{"scope none", 200, `{"uuid":"u","keep_scope":"none"}`, apiauth.ScopeNone, `keep_scope "none"`},
		{"too long", 200, `{"uuid":"u","prefs":"` + strings.Repeat("x", 1<<20) + `"}`, apiauth.ScopeNone, "longer than 1048576 bytes"},
		{"answer echoing the token", 500, testToken, apiauth.ScopeNone, "answered 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := newRawRegistry(t, answer(tt.status, tt.body))
			c := rr.checker(t, newClock())
			defer c.CloseIdleConnections()
			for i := range 2 {
				got, err := c.Check(context.Background(), testToken)
				if got != tt.want {
					t.Errorf("check %d: scope %v, want %v", i, got, tt.want)
				}
				if tt.wantErr == "" {
					if err != nil {
						t.Errorf("check %d: %v", i, err)
					}
					continue
				}
				var ue *apiauth.UnavailableError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) || ue.Host != strings.TrimPrefix(rr.URL, "https://") {
					t.Errorf("check %d: error %v, want an *UnavailableError of that host saying %q", i, err, tt.wantErr)
				}
				if err != nil && strings.Contains(err.Error(), "secretpartofthetoken") {
					t.Errorf("the error shows the token: %v", err)
				}
			}
			// Answers are cached, errors never.
			want := 1
			if tt.wantErr != "" {
				want = 2
			}
			if n := rr.count(); n != want {
				t.Errorf("%d requests to the registry for two checks, want %d", n, want)
			}
			if rr.auth[0] != "Bearer "+testToken {
				t.Errorf("registry got Authorization %q", rr.auth[0])
			}
		})
	}
}

// TestCheckExpiry: a known token is asked again after the TTL (and a
// revocation then takes effect), a refused one after the NegativeTTL
// (and a token created meanwhile is then accepted).
func TestCheckExpiry(t *testing.T) {
	const ttl, negTTL = time.Minute, 5 * time.Second
	tests := []struct {
		name        string
		first, then apiauth.Scope // the registry's answer before and after the change
		cacheFor    time.Duration
	}{
		{"known then revoked", apiauth.ScopeWrite, apiauth.ScopeNone, ttl},
		{"unknown then created", apiauth.ScopeNone, apiauth.ScopeRead, negTTL},
		{"read then write", apiauth.ScopeRead, apiauth.ScopeWrite, ttl},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := apiauthtest.New(t)
			clk := newClock()
			c := reg.Checker(t, apiauth.Options{Now: clk.Now, TTL: ttl, NegativeTTL: negTTL})
			check := func(want apiauth.Scope, requests int) {
				t.Helper()
				got, err := c.Check(context.Background(), testToken)
				if got != want || err != nil {
					t.Errorf("after %v: scope %v, %v; want %v", clk.Now().Sub(newClock().Now()), got, err, want)
				}
				if n := reg.Requests(); n != requests {
					t.Errorf("after %v: %d requests to the registry, want %d", clk.Now().Sub(newClock().Now()), n, requests)
				}
			}
			reg.Set(testToken, tt.first)
			check(tt.first, 1)
			reg.Set(testToken, tt.then)
			clk.Advance(tt.cacheFor - time.Nanosecond)
			check(tt.first, 1) // still cached
			clk.Advance(time.Nanosecond)
			check(tt.then, 2) // expired: asked again
			check(tt.then, 2) // and the new answer cached
		})
	}
}

// TestCheckRegistryDown: a registry that cannot be reached gives an
// *UnavailableError naming its host, wrapping the network error, not
// cached; once it is back, the token is known.
func TestCheckRegistryDown(t *testing.T) {
	reg := apiauthtest.New(t)
	reg.Set(testToken, apiauth.ScopeRead)
	reg.SetDown(testToken)
	clk := newClock()
	c := reg.Checker(t, apiauth.Options{Now: clk.Now})
	defer c.CloseIdleConnections()
	var ue *apiauth.UnavailableError
	if s, err := c.Check(context.Background(), testToken); !errors.As(err, &ue) || ue.Status != 503 || s != apiauth.ScopeNone {
		t.Fatalf("registry answering 503: %v, %v; want an *UnavailableError with status 503", s, err)
	}
	reg.Set(testToken, apiauth.ScopeRead)
	if s, err := c.Check(context.Background(), testToken); s != apiauth.ScopeRead || err != nil {
		t.Fatalf("registry back: %v, %v; want read (the failure is not cached)", s, err)
	}

	reg.Server.Close()
	c.CloseIdleConnections()
	clk.Advance(apiauth.DefaultTTL)
	s, err := c.Check(context.Background(), testToken)
	if !errors.As(err, &ue) || ue.Status != 0 || errors.Unwrap(err) == nil || s != apiauth.ScopeNone {
		t.Fatalf("registry closed: %v, %v; want an *UnavailableError wrapping the network error", s, err)
	}
	if !strings.Contains(err.Error(), reg.Host()) || strings.Contains(err.Error(), "secretpartofthetoken") {
		t.Errorf("error %q does not name the registry, or shows the token", err)
	}
}

// TestCheckUntrustedCertificate: the default client checks the
// registry's certificate against the system's authorities, which do not
// include the test server's; Insecure skips that.
func TestCheckUntrustedCertificate(t *testing.T) {
	reg := apiauthtest.New(t)
	reg.Set(testToken, apiauth.ScopeWrite)
	for _, insecure := range []bool{false, true} {
		c, err := apiauth.New(apiauth.Options{APIHost: reg.Host(), Insecure: insecure})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Check(context.Background(), testToken)
		c.CloseIdleConnections()
		var ue *apiauth.UnavailableError
		switch {
		case insecure && (s != apiauth.ScopeWrite || err != nil):
			t.Errorf("Insecure: %v, %v; want write", s, err)
		case !insecure && (!errors.As(err, &ue) || !strings.Contains(err.Error(), "certificate")):
			t.Errorf("untrusted certificate: %v, %v; want an *UnavailableError about the certificate", s, err)
		}
	}
}

// TestCheckMalformedTokens: tokens no server accepts are refused
// without asking the registry.
func TestCheckMalformedTokens(t *testing.T) {
	reg := apiauthtest.New(t)
	c := reg.Checker(t, apiauth.Options{})
	for _, tok := range []string{"", "with space", "tab\there", "new\nline", "caf\u00e9", strings.Repeat("x", 8<<10+1)} {
		if s, err := c.Check(context.Background(), tok); s != apiauth.ScopeNone || err != nil {
			t.Errorf("Check(%.20q) = %v, %v; want none", tok, s, err)
		}
	}
	if n := reg.Requests(); n != 0 {
		t.Errorf("%d requests to the registry for malformed tokens", n)
	}
}

// TestCheckCoalesces: concurrent checks of one token share one question
// to the registry; a caller that gives up does not cancel it, and its
// answer is cached.
func TestCheckCoalesces(t *testing.T) {
	const callers = 8
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	rr := newRawRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		answer(200, `{"uuid":"u","keep_scope":"read"}`)(w, r)
	})
	c := rr.checker(t, newClock())
	defer c.CloseIdleConnections()
	joined := make(chan struct{}, callers+1)
	c.SetJoinedHook(func() { joined <- struct{}{} })

	// One caller gives up while the question is out.
	ctx, cancel := context.WithCancel(context.Background())
	quitter := make(chan error, 1)
	go func() {
		_, err := c.Check(ctx, testToken)
		quitter <- err
	}()
	<-joined
	<-arrived
	cancel()
	if err := <-quitter; !errors.Is(err, context.Canceled) {
		t.Errorf("caller whose context ended: %v, want context.Canceled", err)
	}

	var wg sync.WaitGroup
	results := make(chan apiauth.Scope, callers)
	for range callers {
		wg.Go(func() {
			s, err := c.Check(context.Background(), testToken)
			if err != nil {
				t.Error(err)
			}
			results <- s
		})
	}
	for range callers {
		<-joined // each waits on the one question, still unanswered
	}
	close(release)
	wg.Wait()
	close(results)
	for s := range results {
		if s != apiauth.ScopeRead {
			t.Errorf("a coalesced check got %v, want read", s)
		}
	}
	if s, err := c.Check(context.Background(), testToken); s != apiauth.ScopeRead || err != nil {
		t.Errorf("check after the question: %v, %v", s, err)
	}
	if n := rr.count(); n != 1 {
		t.Errorf("%d requests to the registry for %d concurrent checks and one after, want 1", n, callers+2)
	}
}

// TestCheckCacheBound: each cache holds at most MaxEntries tokens, the
// oldest going first, and refused tokens do not push known ones out.
func TestCheckCacheBound(t *testing.T) {
	reg := apiauthtest.New(t)
	c := reg.Checker(t, apiauth.Options{MaxEntries: 3})
	tokens := []string{"tok0", "tok1", "tok2", "tok3"}
	for _, tok := range tokens {
		reg.Set(tok, apiauth.ScopeRead)
		c.Check(context.Background(), tok)
	}
	for i := range 10 { // unknown tokens
		c.Check(context.Background(), "unknown"+string(rune('a'+i)))
	}
	if known, refused := c.CacheSizes(); known != 3 || refused != 3 {
		t.Errorf("cache sizes %d known, %d refused; want 3 and 3", known, refused)
	}
	before := reg.Requests()
	for _, tok := range tokens[1:] {
		c.Check(context.Background(), tok)
	}
	if n := reg.Requests() - before; n != 0 {
		t.Errorf("%d requests for the 3 newest known tokens, want 0 (cached)", n)
	}
	c.Check(context.Background(), tokens[0])
	if n := reg.Requests() - before; n != 1 {
		t.Errorf("%d requests for the oldest known token, want 1 (evicted)", n)
	}
}

// TestNewHost: the registry is given as host[:port].
func TestNewHost(t *testing.T) {
	for _, h := range []string{"registry.example", "registry.example:8443", "127.0.0.1:1", "[::1]:443", "[::1]"} {
		c, err := apiauth.New(apiauth.Options{APIHost: h})
		if err != nil || c.Host() != h {
			t.Errorf("New(%q): %v", h, err)
		}
	}
	for _, h := range []string{"", "https://registry.example", "registry.example/", "registry.example/path", "registry.example:", "registry.example:0",
		"registry.example:65536", "registry.example:https", "user@registry.example", "registry.example?x", "::1"} {
		if _, err := apiauth.New(apiauth.Options{APIHost: h}); err == nil {
			t.Errorf("New(%q) accepted", h)
		}
	}
}

// TestMaskToken: errors and logs name an Arvados token by its uuid
// alone, and any other token not at all.
func TestMaskToken(t *testing.T) {
	for tok, want := range map[string]string{
		testToken:                  "v2/zzzzz-gj3su-000000000000001/***",
		"v2/short/secret":          "***",
		"plainsecret":              "***",
		"v2/zzzzz-gj3su-000000000": "***",
	} {
		if got := apiauth.MaskToken(tok); got != want {
			t.Errorf("MaskToken(%q) = %q, want %q", tok, got, want)
		}
	}
}
