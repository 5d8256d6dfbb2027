package keepclient

import (
	"errors"
	"sync"
	"syscall"
	"time"
)

// downList remembers services that recently refused connections or
// lagged far behind others, so that for a short while they are tried
// after the others instead of costing every block a failed or slow
// attempt. Probe order is otherwise kept.
type downList struct {
	hold time.Duration    // how long a refusal or lag demotes a service
	now  func() time.Time // the clock

	mu    sync.Mutex // guards until and slow
	until map[string]time.Time
	slow  map[string]time.Time // lagging services; success does not clear
}

func newDownList(hold time.Duration, now func() time.Time) *downList {
	return &downList{hold: hold, now: now, until: make(map[string]time.Time), slow: make(map[string]time.Time)}
}

// noteSlow records that the service at url lagged far behind others.
func (d *downList) noteSlow(url string) {
	if d.hold <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.slow[url] = d.now().Add(d.hold)
}

// note records the result of a request to the service at url.
func (d *downList) note(url string, err error) {
	if d.hold <= 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err == nil:
		delete(d.until, url)
	case errors.Is(err, syscall.ECONNREFUSED):
		d.until[url] = d.now().Add(d.hold)
	}
}

// isDown reports whether the service at url refused a connection or
// lagged recently.
func (d *downList) isDown(url string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for _, m := range []map[string]time.Time{d.until, d.slow} {
		if t, ok := m[url]; ok {
			if now.Before(t) {
				return true
			}
			delete(m, url)
		}
	}
	return false
}

// demote returns svcs with the services that are down moved to the end,
// keeping the relative order of both groups.
func (d *downList) demote(svcs []Service) []Service {
	out := make([]Service, 0, len(svcs))
	var down []Service
	for _, s := range svcs {
		if d.isDown(s.URL()) {
			down = append(down, s)
		} else {
			out = append(out, s)
		}
	}
	return append(out, down...)
}
