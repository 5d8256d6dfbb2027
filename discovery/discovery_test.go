package discovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keepproject/keep/keepclient"
)

// TestPrecedence sets several sources at once and checks that the highest
// configured one wins, and that a broken one is reported rather than
// skipped.
func TestPrecedence(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, fixed(svc("from-api")))
	badAPI := newFakeAPI(t, fixed(svc("unused")))

	tests := []struct {
		name          string
		explicit      bool            // pass Config.ServicesFile (exists)
		missing       bool            // pass Config.ServicesFile (does not exist)
		env           env             // besides XDG_STATE_HOME
		conf          string          // settings.conf contents
		brokenDefault bool            // write a default services file that does not parse
		client        func() *fakeAPI // whose client to inject; nil = api
		wantHosts     string          // services expected
		wantSrc       string          // substring of Source()
		wantErr       []string        // substrings of the error, if one is expected
	}{
		{
			name:      "explicit file beats everything",
			explicit:  true,
			env:       env{keyKeepServices: "http://from-env:1", keyAPIHost: api.host, keyToken: testToken},
			conf:      keyKeepServices + "=http://from-conf:1\n",
			wantHosts: "from-file",
			wantSrc:   "services file ",
		},
		{
			name:      "ARVADOS_KEEP_SERVICES beats API host and default file",
			env:       env{keyKeepServices: "http://from-env:1 https://from-env2", keyAPIHost: api.host, keyToken: testToken},
			wantHosts: "from-env,from-env2",
			wantSrc:   "ARVADOS_KEEP_SERVICES",
		},
		{
			name:      "ARVADOS_KEEP_SERVICES in settings.conf beats API host in env",
			env:       env{keyAPIHost: api.host, keyToken: testToken},
			conf:      keyKeepServices + "=http://from-conf:1\n",
			wantHosts: "from-conf",
			wantSrc:   "ARVADOS_KEEP_SERVICES in ",
		},
		{
			name:      "API host beats default file",
			env:       env{keyAPIHost: api.host, keyToken: testToken},
			wantHosts: "from-api",
			wantSrc:   "API server " + api.host,
		},
		{
			name:      "API host from settings.conf",
			conf:      keyAPIHost + "=" + api.host + "\n" + keyToken + "=" + testToken + "\n",
			wantHosts: "from-api",
			wantSrc:   "API server " + api.host + " (ARVADOS_API_HOST in ",
		},
		{
			name:      "default file last",
			wantHosts: "from-default",
			wantSrc:   "default services file ",
		},
		{
			name:    "missing explicit file is an error, not a fall-through",
			missing: true,
			env:     env{keyKeepServices: "http://from-env:1"},
			wantSrc: "services file ",
			wantErr: []string{"keep services from services file ", "no such file or directory"},
		},
		{
			name:    "bad ARVADOS_KEEP_SERVICES is an error, not a fall-through",
			env:     env{keyKeepServices: "ftp://nope", keyAPIHost: api.host, keyToken: testToken},
			wantSrc: "ARVADOS_KEEP_SERVICES",
			wantErr: []string{"keep services from ARVADOS_KEEP_SERVICES: ", `"ftp://nope"`},
		},
		{
			name:    "failing API server is an error, not a fall-through",
			env:     env{keyAPIHost: badAPI.host, keyToken: "wrong"},
			client:  func() *fakeAPI { return badAPI },
			wantSrc: "API server ",
			wantErr: []string{"401 Unauthorized", "check ARVADOS_API_TOKEN"},
		},
		{
			name:          "broken default file is an error",
			brokenDefault: true,
			wantSrc:       "default services file ",
			wantErr:       []string{"keep services from default services file ", "not a keep services list", `rerun "keep up"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home, state := t.TempDir(), t.TempDir()
			e := env{"XDG_STATE_HOME": state}
			for k, v := range tt.env {
				e[k] = v
			}
			if tt.conf != "" {
				writeConf(t, home, tt.conf)
			}
			defaultFile := filepath.Join(state, "keep", "services.json")
			if tt.brokenDefault {
				os.MkdirAll(filepath.Dir(defaultFile), 0o755)
				os.WriteFile(defaultFile, []byte("{not json"), 0o644)
			} else {
				writeList(t, defaultFile, svc("from-default"))
			}
			cfg := Config{Getenv: e.getenv, HomeDir: home, HTTPClient: api.Client()}
			if tt.client != nil {
				cfg.HTTPClient = tt.client().Client()
			}
			switch {
			case tt.explicit:
				cfg.ServicesFile = filepath.Join(t.TempDir(), "explicit.json")
				writeList(t, cfg.ServicesFile, svc("from-file"))
			case tt.missing:
				cfg.ServicesFile = filepath.Join(t.TempDir(), "missing.json")
			}

			r := New(cfg)
			if !strings.Contains(r.Source(), tt.wantSrc) {
				t.Errorf("Source() = %q, want it to contain %q", r.Source(), tt.wantSrc)
			}
			svcs, err := r.Services(context.Background())
			if tt.wantErr != nil {
				checkErr(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := hosts(svcs); got != tt.wantHosts {
				t.Errorf("hosts %s, want %s", got, tt.wantHosts)
			}
		})
	}
}

// checkErr fails unless err is a one-line error containing each of want.
func checkErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	if strings.Contains(msg, testToken) {
		t.Errorf("error %q reveals the token", msg)
	}
}

func TestNotConfigured(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	tests := []struct {
		name string
		env  env
		home string
		want string
	}{
		{
			name: "HOME",
			home: home,
			want: `no keep services: --services not given, ARVADOS_KEEP_SERVICES and ARVADOS_API_HOST not set (environment or ` +
				home + `/.config/arvados/settings.conf), and ` + home +
				`/.local/state/keep/services.json does not exist (run "keep up" or pass --services FILE)`,
		},
		{
			name: "XDG_STATE_HOME",
			env:  env{"XDG_STATE_HOME": "/nonexistent/state"},
			home: home,
			want: `no keep services: --services not given, ARVADOS_KEEP_SERVICES and ARVADOS_API_HOST not set (environment or ` +
				home + `/.config/arvados/settings.conf), and /nonexistent/state/keep/services.json does not exist (run "keep up" or pass --services FILE)`,
		},
		{
			name: "relative XDG_STATE_HOME is ignored",
			env:  env{"XDG_STATE_HOME": "state"},
			home: home,
			want: home + `/.local/state/keep/services.json does not exist`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := New(Config{Getenv: tt.env.getenv, HomeDir: tt.home})
			_, err := r.Services(context.Background())
			checkErr(t, err, tt.want)
			if !errors.Is(err, ErrNotConfigured) {
				t.Errorf("errors.Is(%v, ErrNotConfigured) = false", err)
			}
			// Asking again gives the same answer: errors are not cached
			// but the source still is not there.
			if _, err2 := r.Refresh(context.Background()); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Refresh: %v, want %v", err2, err)
			}
		})
	}
}

func TestRefreshRereadsFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "services.json")
	writeList(t, path, svc("one"))
	r := New(Config{ServicesFile: path, Getenv: env{}.getenv, HomeDir: t.TempDir()})
	ctx := context.Background()

	if got := hosts(mustServices(t, r)); got != "one" {
		t.Fatalf("first: %s", got)
	}
	writeList(t, path, svc("two"))
	if got := hosts(mustServices(t, r)); got != "one" {
		t.Errorf("Services after rewrite: %s, want the cached one", got)
	}
	svcs, err := r.Refresh(ctx)
	if err != nil || hosts(svcs) != "two" {
		t.Fatalf("Refresh: %v %v, want two", hosts(svcs), err)
	}
	if got := hosts(mustServices(t, r)); got != "two" {
		t.Errorf("Services after Refresh: %s, want two", got)
	}

	// A failed Refresh reports the error and keeps the last good list.
	os.WriteFile(path, []byte(`{"items":[{"service_host":""}]}`), 0o644)
	_, err = r.Refresh(ctx)
	checkErr(t, err, "keep services from services file "+path, "bad host or port")
	if got := hosts(mustServices(t, r)); got != "two" {
		t.Errorf("Services after failed Refresh: %s, want two", got)
	}

	// Callers cannot change the cache through the returned slice.
	svcs = mustServices(t, r)
	svcs[0].Host = "scribbled"
	if got := hosts(mustServices(t, r)); got != "two" {
		t.Errorf("cache changed through a returned slice: %s", got)
	}
}

func TestEmptyListIsAnError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "services.json")
	writeList(t, path, nil)
	_, err := New(Config{ServicesFile: path, Getenv: env{}.getenv, HomeDir: t.TempDir()}).Services(context.Background())
	checkErr(t, err, "keep services from services file "+path+": the list is empty")
}

func TestConcurrentFirstCallsShareOneFetch(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, fixed(svc("a")))
	r := New(Config{
		Getenv:     env{keyAPIHost: api.host, keyToken: testToken}.getenv,
		HomeDir:    t.TempDir(),
		HTTPClient: api.Client(),
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := r.Services(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := api.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestDefaultServicesFile(t *testing.T) {
	// Not parallel: t.Setenv.
	t.Setenv("HOME", "/home/u")
	t.Setenv("XDG_STATE_HOME", "")
	if got, err := DefaultServicesFile(); err != nil || got != "/home/u/.local/state/keep/services.json" {
		t.Errorf("HOME: %q, %v", got, err)
	}
	t.Setenv("XDG_STATE_HOME", "/xdg/state")
	if got, err := DefaultServicesFile(); err != nil || got != "/xdg/state/keep/services.json" {
		t.Errorf("XDG_STATE_HOME: %q, %v", got, err)
	}
	t.Setenv("XDG_STATE_HOME", "relative")
	if got, err := DefaultServicesFile(); err != nil || got != "/home/u/.local/state/keep/services.json" {
		t.Errorf("relative XDG_STATE_HOME: %q, %v", got, err)
	}
	t.Setenv("HOME", "")
	if got, err := DefaultServicesFile(); err == nil {
		t.Errorf("no HOME: %q, want an error", got)
	}
}

func TestNoHomeNoDefaultFile(t *testing.T) {
	// Not parallel: t.Setenv, because HomeDir "" falls back to $HOME.
	t.Setenv("HOME", "")
	_, err := New(Config{Getenv: env{}.getenv}).Services(context.Background())
	checkErr(t, err, "no keep services: ", "there is no default services file: neither XDG_STATE_HOME nor HOME is set (pass --services FILE)")
	if !errors.Is(err, ErrNotConfigured) {
		t.Errorf("not ErrNotConfigured: %v", err)
	}
}

func TestWriteServicesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a", "b", "services.json")
	want := []keepclient.Service{
		{UUID: "zzzzz-bi6l4-000000000000000", Host: "h1", Port: 1, Type: "disk"},
		{UUID: "zzzzz-bi6l4-000000000000001", Host: "::1", Port: 2, TLS: true, Type: "proxy", ReadOnly: true},
	}
	writeList(t, path, want)
	writeList(t, path, want) // replacing works too
	got, err := keepclient.LoadServices(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only services.json", len(entries))
	}
}
