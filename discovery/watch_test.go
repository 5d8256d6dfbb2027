package discovery

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
)

// watcher runs Resolver.watch with ticks and kicks the test sends. A
// send returns once the watcher has taken it, so the one before it has
// been handled in full: sync sends one more tick to wait for that.
type watcher struct {
	tick    chan time.Time
	kick    chan struct{}
	mu      sync.Mutex
	changes []Change // guarded by mu
	errs    []error  // guarded by mu
}

func startWatcher(t *testing.T, r *Resolver) *watcher {
	t.Helper()
	w := &watcher{tick: make(chan time.Time), kick: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.watch(ctx, w.tick, WatchConfig{
			Kick: w.kick,
			Changed: func(c Change) {
				w.mu.Lock()
				w.changes = append(w.changes, c)
				w.mu.Unlock()
			},
			Failed: func(err error) {
				w.mu.Lock()
				w.errs = append(w.errs, err)
				w.mu.Unlock()
			},
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// look sends a tick (or a kick) and waits until the watcher has handled
// it, and returns what it reported since the last look.
func (w *watcher) look(kick bool) ([]Change, []error) {
	if kick {
		w.kick <- struct{}{}
	} else {
		w.tick <- time.Time{}
	}
	w.tick <- time.Time{} // taken only once the first is handled
	w.mu.Lock()
	defer w.mu.Unlock()
	c, e := w.changes, w.errs
	w.changes, w.errs = nil, nil
	return c, e
}

func uuids(svcs []keepclient.Service) string {
	var u []string
	for _, s := range svcs {
		u = append(u, s.UUID[len(s.UUID)-1:])
	}
	return strings.Join(u, ",")
}

// TestWatchFile: a changed services file is reported with what was
// added, removed and updated; a broken or empty one is reported once
// (again on a kick) and the last good list stays, as Services returns it.
func TestWatchFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.json")
	s := func(i int, host string) keepclient.Service {
		return keepclient.Service{UUID: "zzzzz-bi6l4-00000000000000" + string(rune('0'+i)), Host: host, Port: 25107, Type: "disk"}
	}
	writeList(t, path, []keepclient.Service{s(0, "a"), s(1, "b"), s(2, "c")})
	r := New(Config{ServicesFile: path, Getenv: env{}.getenv, HomeDir: t.TempDir()})
	mustServices(t, r)
	w := startWatcher(t, r)

	if c, e := w.look(false); len(c)+len(e) != 0 {
		t.Fatalf("unchanged file: reported %v %v", c, e)
	}
	writeList(t, path, []keepclient.Service{s(1, "b"), s(2, "c2"), s(3, "d")})
	c, e := w.look(false)
	if len(c) != 1 || len(e) != 0 {
		t.Fatalf("changed file: reported %v %v", c, e)
	}
	if got := [4]string{uuids(c[0].Services), uuids(c[0].Added), uuids(c[0].Removed), uuids(c[0].Updated)}; got != [4]string{"1,2,3", "3", "0", "2"} {
		t.Errorf("change (list, added, removed, updated) = %q", got)
	}
	if c, e := w.look(false); len(c)+len(e) != 0 {
		t.Fatalf("file unchanged since: reported %v %v", c, e)
	}

	for _, bad := range []struct{ text, want string }{
		{`{"items": [`, "unexpected end of JSON"},
		{`{"items": []}`, "the list is empty"},
		{`{"items": [{"uuid": "x", "service_host": "a/b", "service_port": 1}]}`, "bad host or port"},
	} {
		// Replaced whole (a look between truncating and writing would
		// see an empty file, another error).
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(bad.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		c, e := w.look(false)
		if len(c) != 0 || len(e) != 1 || !strings.Contains(e[0].Error(), bad.want) || !strings.Contains(e[0].Error(), path) {
			t.Fatalf("file %s: reported %v %v, want one error saying %q and naming the file", bad.text, c, e, bad.want)
		}
		if c, e := w.look(false); len(c)+len(e) != 0 {
			t.Errorf("file %s: looked again: reported %v %v, want nothing more", bad.text, c, e)
		}
		if c, e := w.look(true); len(c) != 0 || len(e) != 1 {
			t.Errorf("file %s: kicked: reported %v %v, want the error again", bad.text, c, e)
		}
		if got := uuids(mustServices(t, r)); got != "1,2,3" {
			t.Errorf("file %s: Services() = %s, want the last good list", bad.text, got)
		}
	}
	os.Remove(path)
	if _, e := w.look(false); len(e) != 1 || !strings.Contains(e[0].Error(), "no such file") {
		t.Errorf("file removed: reported %v", e)
	}

	// Back to the same good list: nothing changed, so nothing to report
	// but to a kick.
	writeList(t, path, []keepclient.Service{s(3, "d"), s(2, "c2"), s(1, "b")})
	if c, e := w.look(false); len(c)+len(e) != 0 {
		t.Errorf("good list back, reordered: reported %v %v", c, e)
	}
	if c, e := w.look(true); len(c) != 1 || c[0].Changed() || len(e) != 0 {
		t.Errorf("kicked with the file unchanged: reported %v %v, want one unchanged Change", c, e)
	}
}

// TestWatchAPI: the API server is asked again at each look, and a
// changed answer reported.
func TestWatchAPI(t *testing.T) {
	var mu sync.Mutex
	list := svc("keep0")
	api := newFakeAPI(t, func() []keepclient.Service {
		mu.Lock()
		defer mu.Unlock()
		return list
	})
	r := New(Config{Getenv: env{keyAPIHost: api.host, keyToken: testToken}.getenv, HomeDir: t.TempDir(), HTTPClient: api.Client()})
	mustServices(t, r)
	w := startWatcher(t, r)
	mu.Lock()
	list = svc("keep1")
	mu.Unlock()
	c, e := w.look(false)
	if len(c) != 1 || len(e) != 0 || hosts(c[0].Updated) != "keep1" || hosts(c[0].Services) != "keep1" {
		t.Fatalf("API server's list changed: reported %v %v", c, e)
	}
	if n := api.requests.Load(); n < 2 {
		t.Errorf("%d requests to the API server, want one for Services and one per look", n)
	}
}

// TestWatchFixedList: a list from ARVADOS_KEEP_SERVICES cannot change,
// so Watch returns at once.
func TestWatchFixedList(t *testing.T) {
	r := New(Config{Getenv: env{keyKeepServices: "http://127.0.0.1:1"}.getenv, HomeDir: t.TempDir()})
	mustServices(t, r)
	r.Watch(context.Background(), WatchConfig{Every: time.Nanosecond, Changed: func(Change) { t.Error("a fixed list changed") }})
}
