package discovery

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keepproject/keep/keepclient"
)

// closedAddr returns a loopback host:port where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestAPIFetch(t *testing.T) {
	t.Parallel()
	want := []keepclient.Service{
		{UUID: "zzzzz-bi6l4-000000000000000", Host: "keep0", Port: 25107, Type: "disk"},
		{UUID: "zzzzz-bi6l4-000000000000001", Host: "keep1", Port: 25107, Type: "disk", ReadOnly: true},
	}
	api := newFakeAPI(t, fixed(want))
	closed := closedAddr(t)

	tests := []struct {
		name     string
		env      env
		inject   bool // inject the test server's client (trusts its certificate)
		wantSvcs bool
		wantErr  []string
	}{
		{
			name:     "success with injected client",
			env:      env{keyAPIHost: api.host, keyToken: testToken},
			inject:   true,
			wantSvcs: true,
		},
		{
			name:     "ARVADOS_API_HOST_INSECURE skips certificate checks",
			env:      env{keyAPIHost: api.host, keyToken: testToken, keyInsecure: "TRUE"},
			wantSvcs: true,
		},
		{
			name:     "ARVADOS_API_HOST_INSECURE=yes",
			env:      env{keyAPIHost: api.host, keyToken: testToken, keyInsecure: "Yes"},
			wantSvcs: true,
		},
		{
			name:    "certificate checked without ARVADOS_API_HOST_INSECURE",
			env:     env{keyAPIHost: api.host, keyToken: testToken, keyInsecure: "0"},
			wantErr: []string{"API server " + api.host + ": ", "certificate", "set SSL_CERT_FILE", "ARVADOS_API_HOST_INSECURE=1 skips"},
		},
		{
			name:   "401 names status and first body line, masks the token",
			env:    env{keyAPIHost: api.host, keyToken: "not-" + testToken},
			inject: true,
			wantErr: []string{
				"keep services from API server " + api.host + ": GET /arvados/v1/keep_services/accessible: 401 Unauthorized: ",
				`{"errors":["Not logged in: ***"]}`,
				"(check ARVADOS_API_TOKEN)",
			},
		},
		{
			name:    "unreachable host",
			env:     env{keyAPIHost: closed, keyToken: testToken},
			wantErr: []string{"keep services from API server " + closed + ": ", "connection refused", "check ARVADOS_API_HOST"},
		},
		{
			name:    "token missing",
			env:     env{keyAPIHost: api.host},
			inject:  true,
			wantErr: []string{"keep services from API server " + api.host + ": ARVADOS_API_HOST is set but ARVADOS_API_TOKEN is not"},
		},
		{
			name:    "host is a URL",
			env:     env{keyAPIHost: "https://" + api.host, keyToken: testToken},
			wantErr: []string{`keep services from ARVADOS_API_HOST: "https://` + api.host + `" is not host or host:port`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Getenv: tt.env.getenv, HomeDir: t.TempDir()}
			if tt.inject {
				cfg.HTTPClient = api.Client()
			}
			r := New(cfg)
			if r.Token() != tt.env[keyToken] {
				t.Errorf("Token() = %q, want %q", r.Token(), tt.env[keyToken])
			}
			got, err := r.Services(context.Background())
			if tt.wantErr != nil {
				checkErr(t, err, tt.wantErr...)
				if errors.Is(err, ErrNotConfigured) {
					t.Errorf("a broken source reported as not configured: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestAPIDefaultPort(t *testing.T) {
	t.Parallel()
	r := New(Config{Getenv: env{keyAPIHost: "arvados.example", keyToken: "x"}.getenv, HomeDir: t.TempDir()})
	if got, want := r.Source(), "API server arvados.example:443"; got != want {
		t.Errorf("Source() = %q, want %q", got, want)
	}
}

func TestAPIRefreshRequeries(t *testing.T) {
	t.Parallel()
	answers := make(chan []keepclient.Service, 2)
	answers <- svc("first")
	answers <- svc("second")
	api := newFakeAPI(t, func() []keepclient.Service { return <-answers })
	r := New(Config{
		Getenv:     env{keyAPIHost: api.host, keyToken: testToken}.getenv,
		HomeDir:    t.TempDir(),
		HTTPClient: api.Client(),
	})
	if got := hosts(mustServices(t, r)); got != "first" {
		t.Fatalf("Services: %s", got)
	}
	if got := hosts(mustServices(t, r)); got != "first" || api.requests.Load() != 1 {
		t.Errorf("second Services: %s after %d requests, want cached first after 1", got, api.requests.Load())
	}
	svcs, err := r.Refresh(context.Background())
	if err != nil || hosts(svcs) != "second" || api.requests.Load() != 2 {
		t.Errorf("Refresh: %s, %v after %d requests, want second after 2", hosts(svcs), err, api.requests.Load())
	}
}

func TestAPIContextCanceled(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close)
	r := New(Config{
		Getenv:     env{keyAPIHost: strings.TrimPrefix(ts.URL, "https://"), keyToken: testToken}.getenv,
		HomeDir:    t.TempDir(),
		HTTPClient: ts.Client(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := r.Services(ctx)
	checkErr(t, err, "keep services from API server ", "context canceled")
}
