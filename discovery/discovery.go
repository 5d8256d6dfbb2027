// Package discovery finds the Keep services a client should talk to.
//
// The first configured source wins, in this order:
//
//  1. an explicit services file (Config.ServicesFile; the CLI's --services
//     FILE), in the Arvados keep_services/accessible JSON shape;
//  2. ARVADOS_KEEP_SERVICES: space-separated http or https root URLs, each
//     a writable non-disk service of type "proxy" with uuid
//     00000-bi6l4-<15-digit index>, as in the Arvados SDKs;
//  3. ARVADOS_API_HOST with ARVADOS_API_TOKEN: the API server's
//     keep_services/accessible list, fetched over https
//     (ARVADOS_API_HOST_INSECURE=1, yes or true skips certificate checks);
//  4. the default services file written by "keep up" (DefaultServicesFile).
//
// The ARVADOS_* keys are read from the environment and from
// $HOME/.config/arvados/settings.conf (KEY=value lines); for each key the
// environment wins, as in the Arvados SDKs. An empty value counts as unset.
//
// A source that is configured but broken is an error: discovery never
// falls through to a lower-precedence source, because writing blocks to a
// cluster the user did not mean is worse than stopping. Every error is one
// line naming the source and, where it helps, the fix.
//
// Answers are cached in memory by the Resolver only; nothing is cached on
// disk, so each process asks its source once and again on Refresh (and
// on each look of Watch, which long-running processes use to follow a
// changing list).
package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/keepproject/keep/keepclient"
)

// ErrNotConfigured is wrapped by the error returned when no source of
// services is configured at all (as opposed to one that is configured but
// failing), so callers such as "keep up" can tell the two apart.
var ErrNotConfigured = errors.New("no keep services")

// Config says where to look for services. The zero value looks in the
// process environment and the user's home directory.
type Config struct {
	// ServicesFile, if set, is a keep_services/accessible JSON file that
	// overrides every other source.
	ServicesFile string

	// Getenv looks up environment variables; nil means os.Getenv.
	Getenv func(string) string

	// HomeDir is where settings.conf and the default services file are
	// looked for; "" means os.UserHomeDir().
	HomeDir string

	// HTTPClient fetches the list from the API server. nil means a client
	// of the resolver's own, which honours ARVADOS_API_HOST_INSECURE and
	// keeps no idle connections. A non-nil client is used as it is:
	// ARVADOS_API_HOST_INSECURE does not change its TLS settings.
	HTTPClient *http.Client
}

// Resolver finds services from the source chosen when it was made and
// caches the answer. It is safe for concurrent use; the zero value is not
// usable, call New.
type Resolver struct {
	src      source
	token    string
	keepTok  string // KEEP_TOKEN
	apiHost  string
	insecure bool

	// fetching is a one-slot semaphore: one fetch at a time, so that
	// concurrent first callers share one answer instead of each asking.
	fetching chan struct{}

	mu   sync.Mutex
	svcs []keepclient.Service // guarded by mu; last good answer, nil before the first
}

// New returns a resolver for cfg. It reads the environment and
// settings.conf now and picks the source; it does no network I/O. Problems
// with the configuration (a bad URL in ARVADOS_KEEP_SERVICES, say) are
// reported by Services.
func New(cfg Config) *Resolver {
	s := readSettings(cfg)
	return &Resolver{
		src:      chooseSource(cfg, s),
		token:    s.get(keyToken).value,
		keepTok:  s.getenv(keyKeepToken),
		apiHost:  s.get(keyAPIHost).value,
		insecure: s.insecure(),
		fetching: make(chan struct{}, 1),
	}
}

// Services returns the services, fetching them from the source on the
// first call and returning a copy of the cached list after that. Errors
// are not cached: a later call tries again.
func (r *Resolver) Services(ctx context.Context) ([]keepclient.Service, error) {
	if svcs := r.cached(); svcs != nil {
		return svcs, nil
	}
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.unlock()
	// Another caller may have fetched while this one waited.
	if svcs := r.cached(); svcs != nil {
		return svcs, nil
	}
	return r.fetchLocked(ctx)
}

// Refresh fetches the services again: the API server is asked again and a
// services file is read again (ARVADOS_KEEP_SERVICES cannot change). The
// client calls it between write passes when a write falls short. On error
// the previous list stays cached for Services.
func (r *Resolver) Refresh(ctx context.Context) ([]keepclient.Service, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.unlock()
	return r.fetchLocked(ctx)
}

// Source describes where the services come from, for messages: for
// example "services file /x", "ARVADOS_KEEP_SERVICES" or
// "API server h:443". It is "" when no source is configured.
func (r *Resolver) Source() string { return r.src.String() }

// Token returns ARVADOS_API_TOKEN (from the environment, else
// settings.conf), or "" if it is not set. Clients send it as the bearer
// token to the Keep services.
func (r *Resolver) Token() string { return r.token }

// KeepToken returns the token to send to Keep services:
// ARVADOS_API_TOKEN, else KEEP_TOKEN (from the environment only), else "".
func (r *Resolver) KeepToken() string { return cmp.Or(r.token, r.keepTok) }

// APIHost returns ARVADOS_API_HOST (from the environment, else
// settings.conf), or "" if it is not set.
func (r *Resolver) APIHost() string { return r.apiHost }

// Insecure reports whether ARVADOS_API_HOST_INSECURE asks to skip TLS
// certificate checks. Arvados clients apply it to Keep services too.
func (r *Resolver) Insecure() bool { return r.insecure }

func (r *Resolver) lock(ctx context.Context) error {
	select {
	case r.fetching <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("keep services: waiting for another fetch: %w", context.Cause(ctx))
	}
}

func (r *Resolver) unlock() { <-r.fetching }

func (r *Resolver) cached() []keepclient.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.svcs)
}

// fetchLocked asks the source and caches a good answer. The caller holds
// the fetching semaphore.
func (r *Resolver) fetchLocked(ctx context.Context) ([]keepclient.Service, error) {
	svcs, err := r.src.fetch(ctx)
	if err != nil {
		return nil, err
	}
	if len(svcs) == 0 {
		return nil, fmt.Errorf("keep services from %s: the list is empty", r.src)
	}
	r.mu.Lock()
	r.svcs = svcs
	r.mu.Unlock()
	return slices.Clone(svcs), nil
}
