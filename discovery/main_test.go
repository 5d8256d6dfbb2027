package discovery

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/keepclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env is a fake environment for Config.Getenv.
type env map[string]string

func (e env) getenv(k string) string { return e[k] }

// svc returns a one-service list whose host names where it came from.
func svc(host string) []keepclient.Service {
	return []keepclient.Service{{UUID: "zzzzz-bi6l4-000000000000000", Host: host, Port: 25107, Type: "disk"}}
}

// writeList writes svcs as a services file at path.
func writeList(t *testing.T, path string, svcs []keepclient.Service) {
	t.Helper()
	if err := WriteServicesFile(path, svcs); err != nil {
		t.Fatal(err)
	}
}

// writeConf writes $home/.config/arvados/settings.conf.
func writeConf(t *testing.T, home, text string) {
	t.Helper()
	dir := filepath.Join(home, ".config", "arvados")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "settings.conf"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeAPI is an Arvados API server answering keep_services/accessible
// over TLS with a test certificate.
type fakeAPI struct {
	*httptest.Server
	host     string       // host:port, for ARVADOS_API_HOST
	requests atomic.Int32 // keep_services/accessible requests seen
}

const testToken = "v2/zzzzz-gj3su-000000000000000/s3cr3tt0k3n"

// newFakeAPI serves list to requests with testToken, and a 401 to others.
// list is called per request, so tests can change the answer.
func newFakeAPI(t *testing.T, list func() []keepclient.Service) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != accessiblePath {
			http.Error(w, "no such route", http.StatusNotFound)
			return
		}
		f.requests.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.WriteHeader(http.StatusUnauthorized)
			// Arvados's shape, echoing the token to check it is masked.
			w.Write([]byte(`{"errors":["Not logged in: ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"]}` + "\nsecond line\n"))
			return
		}
		data, err := keepclient.MarshalServices(list())
		if err != nil {
			t.Error(err)
		}
		w.Write(data)
	}))
	// Tests of certificate checks make the server log handshake errors.
	f.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.StartTLS()
	t.Cleanup(f.Close)
	f.host = strings.TrimPrefix(f.URL, "https://")
	return f
}

// fixed returns a list function for newFakeAPI.
func fixed(svcs []keepclient.Service) func() []keepclient.Service {
	return func() []keepclient.Service { return svcs }
}

// hosts lists the hosts of svcs, for comparisons.
func hosts(svcs []keepclient.Service) string {
	var h []string
	for _, s := range svcs {
		h = append(h, s.Host)
	}
	return strings.Join(h, ",")
}

// mustServices calls r.Services and fails the test on error.
func mustServices(t *testing.T, r *Resolver) []keepclient.Service {
	t.Helper()
	svcs, err := r.Services(context.Background())
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	return svcs
}
