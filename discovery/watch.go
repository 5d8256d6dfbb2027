package discovery

import (
	"context"
	"slices"
	"time"

	"github.com/keepproject/keep/keepclient"
)

// Change is a service list Watch found, and how it differs from the one
// before it. Services are matched by uuid (by URL when they have none).
type Change struct {
	// Services is the whole new list, as the source gave it.
	Services []keepclient.Service
	// Added and Removed are the services new to the list and gone from
	// it; Updated those still listed under their uuid with another host,
	// port, type or flags, as they are now.
	Added, Removed, Updated []keepclient.Service
}

// Changed reports whether the list differs from the one before; a Change
// that did not is passed only to answer a kick.
func (c Change) Changed() bool {
	return len(c.Added)+len(c.Removed)+len(c.Updated) > 0
}

// WatchConfig says how often Watch looks and whom it tells.
type WatchConfig struct {
	// Every is the time between looks; 0 or less means look only when
	// kicked.
	Every time.Duration
	// Kick, when it receives, makes Watch look at once (a process sends
	// on it when asked to reload, on SIGHUP say). Nil never does.
	Kick <-chan struct{}
	// Changed is called with each list that differs from the last one
	// seen, and after each kick even when nothing changed, so that a
	// reload asked for is always answered. Required.
	Changed func(Change)
	// Failed is called when the source fails: the services file is
	// missing, unreadable or malformed or lists no services, the API
	// server does not answer. The last good list stays in use. A failure
	// is reported once, and again only when its message changes, after a
	// success, or after a kick. Nil ignores failures.
	Failed func(error)
}

// Watch looks for a changed service list until ctx ends, as Refresh
// does (the services file read again, the API server asked again),
// every cfg.Every and whenever cfg.Kick receives, and reports to
// cfg.Changed and cfg.Failed. It compares with the list Watch last saw,
// starting from the one the last Services or Refresh returned. It runs
// in the caller's goroutine and returns when ctx ends; a list fixed by
// ARVADOS_KEEP_SERVICES cannot change, so for it Watch returns at once.
// A long-running user (the proxy) hands each change to its
// keepclient.Client with SetServices.
//
// A services file written in place may be looked at half-written; that
// is reported as a failure and the last good list kept until the next
// look. Replacing the file by renaming a new one over it (as
// WriteServicesFile does) avoids the noise.
func (r *Resolver) Watch(ctx context.Context, cfg WatchConfig) {
	if _, ok := r.src.(staticSource); ok {
		return
	}
	var tick <-chan time.Time
	if cfg.Every > 0 {
		t := time.NewTicker(cfg.Every)
		defer t.Stop()
		tick = t.C
	}
	r.watch(ctx, tick, cfg)
}

// watch is Watch with the ticks given, so tests can drive them.
func (r *Resolver) watch(ctx context.Context, tick <-chan time.Time, cfg WatchConfig) {
	last := r.cached()
	lastErr := ""
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-cfg.Kick:
			kicked = true
		}
		svcs, err := r.Refresh(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if cfg.Failed != nil && (kicked || err.Error() != lastErr) {
				cfg.Failed(err)
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
		c := diff(last, svcs)
		if c.Changed() || kicked {
			cfg.Changed(c)
		}
		last = svcs
	}
}

// diff returns the change from old to cur.
func diff(old, cur []keepclient.Service) Change {
	c := Change{Services: slices.Clone(cur)}
	before := make(map[string]keepclient.Service, len(old))
	for _, s := range old {
		before[s.String()] = s
	}
	now := make(map[string]bool, len(cur))
	for _, s := range cur {
		now[s.String()] = true
		switch b, ok := before[s.String()]; {
		case !ok:
			c.Added = append(c.Added, s)
		case b != s:
			c.Updated = append(c.Updated, s)
		}
	}
	for _, s := range old {
		if !now[s.String()] {
			c.Removed = append(c.Removed, s)
		}
	}
	return c
}
