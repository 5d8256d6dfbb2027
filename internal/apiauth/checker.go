package apiauth

import (
	"cmp"
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Defaults for Options.
const (
	// DefaultTTL is how long a token the registry knows is trusted
	// before it is asked again: a revoked token keeps working on a
	// server for at most this long.
	DefaultTTL = time.Minute
	// DefaultNegativeTTL is how long a token the registry refused stays
	// refused before it is asked again: a token just created may be
	// refused for this long by a server that saw it before.
	DefaultNegativeTTL = 5 * time.Second
	// DefaultMaxEntries bounds each of the two caches (tokens known,
	// tokens refused), so that callers sending many different tokens
	// cannot grow the memory without bound, nor push the known tokens
	// out with refused ones.
	DefaultMaxEntries = 10000
	// DefaultTimeout bounds one question to the registry.
	DefaultTimeout = 30 * time.Second
)

// CurrentUserPath is the route asked: the Arvados API's users/current,
// which the registry answers too.
const CurrentUserPath = "/arvados/v1/users/current"

// maxAnswer is the most of an answer read, in bytes. A user object is
// a few hundred bytes; an Arvados user with large "prefs" a few
// kilobytes. Anything longer is not the answer expected.
const maxAnswer = 1 << 20

// maxToken is the longest token sent to the registry, in bytes, as the
// block servers and the proxy accept them (room for OpenID Connect
// access tokens).
const maxToken = 8 << 10

// Options configure a Checker. Only APIHost is required.
type Options struct {
	// APIHost is the registry's (or Arvados API server's) host[:port],
	// reached over HTTPS, as ARVADOS_API_HOST names it.
	APIHost string
	// HTTPClient asks the registry. Nil means a client with the system's
	// certificate authorities (on Linux, those of the PEM file named by
	// $SSL_CERT_FILE when it is set) that follows no redirects. A
	// client given here is used as it is, except that redirects are
	// never followed either.
	HTTPClient *http.Client
	// Insecure skips checking the registry's certificate. It applies
	// only to the default client; it is for tests.
	Insecure bool
	// Now is the clock of the caches; nil means time.Now.
	Now func() time.Time
	// TTL is how long a known token's scope is cached; 0 means
	// DefaultTTL.
	TTL time.Duration
	// NegativeTTL is how long a refused token (the registry answered
	// 401 or 403) is cached as ScopeNone; 0 means DefaultNegativeTTL.
	NegativeTTL time.Duration
	// MaxEntries bounds each cache (known tokens, refused tokens); when
	// one is full the entry stored longest ago goes. 0 means
	// DefaultMaxEntries.
	MaxEntries int
	// Timeout bounds each question to the registry; 0 means
	// DefaultTimeout.
	Timeout time.Duration
}

// UnavailableError means the registry could not say what a token may
// do: it could not be reached, or its answer was not one (a status
// other than 200, 401 and 403, or a body that is not a user object).
// Callers answer 502 Bad Gateway; such answers are never cached. Its
// text never holds the token.
type UnavailableError struct {
	// Host is the registry's host[:port].
	Host string
	// Status is the registry's HTTP status, 0 when there was none.
	Status int
	// Reason says what went wrong, in a sentence.
	Reason string
	err    error // the network error, if any (its text holds no token)
}

// Error says which registry could not say what a token may do, and why.
func (e *UnavailableError) Error() string {
	return fmt.Sprintf("token registry %s: %s", e.Host, e.Reason)
}

// Unwrap returns the network error underneath, if any.
func (e *UnavailableError) Unwrap() error { return e.err }

// Checker asks a registry what tokens may do, caching the answers. It is
// safe for concurrent use.
type Checker struct {
	host    string
	url     string
	client  *http.Client
	now     func() time.Time
	ttl     time.Duration
	negTTL  time.Duration
	timeout time.Duration

	mu    sync.Mutex
	known *cache // tokens the registry knows
	bad   *cache // tokens it refused

	flights singleflight.Group
	// joined, when set (by tests), is called each time a Check waits
	// for a question to the registry, its own or another's.
	joined func()
}

// New returns a checker asking the registry at opts.APIHost. It checks
// the host's form only; the registry is first asked on the first Check.
func New(opts Options) (*Checker, error) {
	host, err := checkHost(opts.APIHost)
	if err != nil {
		return nil, err
	}
	if opts.TTL < 0 || opts.NegativeTTL < 0 || opts.MaxEntries < 0 || opts.Timeout < 0 {
		return nil, errors.New("token checker: negative TTL, negative TTL for refusals, cache size or timeout")
	}
	c := &Checker{
		host:    host,
		url:     (&url.URL{Scheme: "https", Host: host, Path: CurrentUserPath}).String(),
		now:     opts.Now,
		ttl:     cmp.Or(opts.TTL, DefaultTTL),
		negTTL:  cmp.Or(opts.NegativeTTL, DefaultNegativeTTL),
		timeout: cmp.Or(opts.Timeout, DefaultTimeout),
		known:   newCache(cmp.Or(opts.MaxEntries, DefaultMaxEntries)),
		bad:     newCache(cmp.Or(opts.MaxEntries, DefaultMaxEntries)),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if opts.HTTPClient != nil {
		cl := *opts.HTTPClient
		c.client = &cl
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if opts.Insecure {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		c.client = &http.Client{Transport: tr}
	}
	// A redirect would carry the token to wherever it points, and
	// users/current is never redirected by a registry or Arvados.
	c.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// checkHost returns host[:port] as given, or says why it is not one.
func checkHost(h string) (string, error) {
	switch {
	case h == "":
		return "", errors.New("no token registry host given")
	case strings.Contains(h, "://"):
		return "", fmt.Errorf("token registry %q: give host[:port], without a scheme (it is always reached over https)", h)
	}
	u, err := url.Parse("https://" + h)
	if err != nil || u.Host != h || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Hostname() == "" {
		return "", fmt.Errorf("token registry %q: not a host[:port]", h)
	}
	if p := u.Port(); p != "" || strings.HasSuffix(h, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("token registry %q: bad port %q, want 1 to 65535", h, p)
		}
	}
	return h, nil
}

// CloseIdleConnections closes the connections to the registry not in
// use, as http.Client.CloseIdleConnections does.
func (c *Checker) CloseIdleConnections() { c.client.CloseIdleConnections() }

// Host returns the registry's host[:port].
func (c *Checker) Host() string { return c.host }

// Check returns what token may do: ScopeNone, with a nil error, when the
// registry does not know it (or it is empty or malformed, which the
// registry is not asked about). An error means the registry could not
// say (an *UnavailableError), or ctx ended while waiting for it.
//
// Answers are cached by a hash of the token: known tokens for the TTL,
// refused ones for the NegativeTTL. Concurrent checks of one token not
// in the cache share one question to the registry, which runs to its
// end (bounded by Options.Timeout) even if every caller has left, so
// that its answer is cached.
func (c *Checker) Check(ctx context.Context, token string) (Scope, error) {
	if !wellFormed(token) {
		return ScopeNone, nil
	}
	key := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	s, ok := c.known.get(key, now)
	if !ok {
		s, ok = c.bad.get(key, now)
	}
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	ch := c.flights.DoChan(string(key[:]), func() (any, error) {
		// Not the caller's cancellation: others may be waiting too,
		// and the answer is worth caching.
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		s, err := c.ask(qctx, token)
		if err != nil {
			return ScopeNone, err
		}
		c.store(key, s)
		return s, nil
	})
	if c.joined != nil {
		c.joined()
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return ScopeNone, r.Err
		}
		return r.Val.(Scope), nil
	case <-ctx.Done():
		return ScopeNone, fmt.Errorf("checking a token with %s: %w", c.host, ctx.Err())
	}
}

// wellFormed reports whether token could be one: not empty, not too
// long, printable ASCII without spaces (which is also what an HTTP
// header may carry).
func wellFormed(token string) bool {
	if token == "" || len(token) > maxToken {
		return false
	}
	for i := 0; i < len(token); i++ {
		if token[i] < 0x21 || token[i] > 0x7e {
			return false
		}
	}
	return true
}

// store caches s for the token whose hash is key.
func (c *Checker) store(key [sha256.Size]byte, s Scope) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == ScopeNone {
		c.known.remove(key)
		c.bad.put(key, s, now.Add(c.negTTL))
	} else {
		c.bad.remove(key)
		c.known.put(key, s, now.Add(c.ttl))
	}
}

// user is the part of a users/current answer read. Pointers tell a
// missing field from a zero one.
type user struct {
	UUID      string  `json:"uuid"`
	IsAdmin   *bool   `json:"is_admin"`
	IsActive  *bool   `json:"is_active"`
	KeepScope *string `json:"keep_scope"`
}

// ask asks the registry about token.
func (c *Checker) ask(ctx context.Context, token string) (Scope, error) {
	unavailable := func(status int, err error, format string, args ...any) error {
		reason := fmt.Sprintf(format, args...)
		if strings.Contains(reason, token) {
			// The network errors name the URL, never the headers, so
			// this should not happen; but the token stays out anyway.
			reason, err = strings.ReplaceAll(reason, token, MaskToken(token)), nil
		}
		return &UnavailableError{Host: c.host, Status: status, Reason: reason, err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return ScopeNone, unavailable(0, nil, "building the request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return ScopeNone, unavailable(0, err, "could not be asked about a token: %v", err)
	}
	defer resp.Body.Close()
	// Read (a bounded part of) every answer, so that the connection can
	// be used again.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return ScopeNone, nil
	case resp.StatusCode != http.StatusOK:
		return ScopeNone, unavailable(resp.StatusCode, nil, "answered %s to %s, not 200, 401 or 403", resp.Status, CurrentUserPath)
	case err != nil:
		return ScopeNone, unavailable(resp.StatusCode, err, "reading its answer: %v", err)
	case len(body) > maxAnswer:
		return ScopeNone, unavailable(resp.StatusCode, nil, "its answer to %s is longer than %d bytes, which no user object is", CurrentUserPath, maxAnswer)
	}
	var u user
	if err := json.Unmarshal(body, &u); err != nil {
		return ScopeNone, unavailable(resp.StatusCode, nil, "its answer to %s is not a JSON user object: %v", CurrentUserPath, err)
	}
	if u.UUID == "" {
		return ScopeNone, unavailable(resp.StatusCode, nil, "its answer to %s has no uuid, so it is not a user object", CurrentUserPath)
	}
	if u.IsActive != nil && !*u.IsActive {
		// An Arvados user not (or no longer) active may still read
		// its own record, but nothing else.
		return ScopeNone, nil
	}
	if u.KeepScope == nil {
		// An Arvados API server: its tokens may do what their user may.
		if u.IsAdmin != nil && *u.IsAdmin {
			return ScopeAdmin, nil
		}
		return ScopeWrite, nil
	}
	s, err := ParseScope(*u.KeepScope)
	if err != nil {
		return ScopeNone, unavailable(resp.StatusCode, nil, "its answer to %s has %s %q, not read, write or admin", CurrentUserPath, ScopeField, clip(*u.KeepScope))
	}
	return s, nil
}

// clip cuts s, from an answer, for quoting in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// MaskToken returns token fit for a log or an error message: an
// Arvados v2 token "v2/UUID/SECRET" keeps its UUID, which names it
// without granting anything; anything else is replaced whole.
func MaskToken(token string) string {
	if rest, ok := strings.CutPrefix(token, "v2/"); ok {
		if uuid, _, ok := strings.Cut(rest, "/"); ok && len(uuid) == 27 {
			return "v2/" + uuid + "/***"
		}
	}
	return "***"
}

// cache maps token hashes to scopes until a deadline. When full, the
// entry put longest ago goes, expired or not.
type cache struct {
	max   int
	order *list.List // of *cacheEntry, oldest first
	byKey map[[sha256.Size]byte]*list.Element
}

type cacheEntry struct {
	key     [sha256.Size]byte
	scope   Scope
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), byKey: map[[sha256.Size]byte]*list.Element{}}
}

// get returns key's scope if it is cached and has not expired at now.
func (c *cache) get(key [sha256.Size]byte, now time.Time) (Scope, bool) {
	el, ok := c.byKey[key]
	if !ok {
		return ScopeNone, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.byKey, key)
		return ScopeNone, false
	}
	return e.scope, true
}

// put caches key's scope until expires.
func (c *cache) put(key [sha256.Size]byte, s Scope, expires time.Time) {
	if el, ok := c.byKey[key]; ok {
		e := el.Value.(*cacheEntry)
		e.scope, e.expires = s, expires
		c.order.MoveToBack(el)
		return
	}
	for c.order.Len() >= c.max {
		oldest := c.order.Front()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*cacheEntry).key)
	}
	c.byKey[key] = c.order.PushBack(&cacheEntry{key: key, scope: s, expires: expires})
}

// remove drops key, if cached.
func (c *cache) remove(key [sha256.Size]byte) {
	if el, ok := c.byKey[key]; ok {
		c.order.Remove(el)
		delete(c.byKey, key)
	}
}

// size returns the number of entries, expired or not.
func (c *cache) size() int { return c.order.Len() }
