package keepproxy_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/apiauth/apiauthtest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepproxy"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestProxyTokenChecker: with a TokenChecker, the proxy lets GET and
// HEAD through with a read token and PUT with a write token; an unknown
// token gets 401, too small a scope 403 and a registry that cannot say
// 502, and none of those reaches a block server; no token is logged.
func TestProxyTokenChecker(t *testing.T) {
	const (
		readToken  = "read-secret-token"
		writeToken = "write-secret-token"
		arvToken   = "arvados-secret-token"
		downToken  = "down-secret-token"
	)
	reg := apiauthtest.New(t)
	reg.Set(readToken, apiauth.ScopeRead)
	reg.Set(writeToken, apiauth.ScopeWrite)
	reg.SetArvados(arvToken, false)
	reg.SetDown(downToken)
	checker := reg.Checker(t, apiauth.Options{})
	defer checker.CloseIdleConnections()

	c := keeptest.NewCluster(t, 3)
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	px := keepproxy.NewWithOptions(kc, keepproxy.Options{TokenChecker: checker, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv := httptest.NewServer(px)
	t.Cleanup(func() {
		srv.Close()
		px.Close()
		kc.Close()
	})
	stored := []byte("stored before the test")
	c.Server(0).Store(stored)
	loc := locator.New(stored).String()

	tests := []struct {
		method, tok string
		want        int
	}{
		{"GET", "", 401},
		{"GET", "zzz", 401},
		{"GET", readToken, 200},
		{"HEAD", readToken, 200},
		{"GET", writeToken, 200},
		{"GET", arvToken, 200},
		{"GET", downToken, 502},
		{"HEAD", downToken, 502},
		{"PUT", "", 401},
		{"PUT", "zzz", 401},
		{"PUT", readToken, 403},
		{"PUT", writeToken, 200},
		{"PUT", arvToken, 200},
		{"PUT", downToken, 502},
		{"DELETE", writeToken, 405},
		{"OPTIONS", "", 200},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %.4s", tt.method, tt.tok), func(t *testing.T) {
			path, body := "/"+loc, []byte(nil)
			if tt.method == "PUT" {
				body = []byte("a new block with " + tt.tok)
				path = "/" + locator.New(body).Hash
			}
			before := len(c.Requests())
			req, _ := http.NewRequest(tt.method, srv.URL+path, bytes.NewReader(body))
			if tt.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tt.tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%d %q, want %d", resp.StatusCode, got, tt.want)
			}
			if tt.want != 200 && len(c.Requests()) != before {
				t.Errorf("a refused request reached the block servers")
			}
			if tt.method == "GET" && tt.want == 200 && string(got) != string(stored) {
				t.Errorf("GET answered %q", got)
			}
			if tt.method == "PUT" && tt.want == 200 && len(c.Holders(locator.New(body).Hash)) != 2 {
				t.Errorf("PUT stored %d copies, want 2", len(c.Holders(locator.New(body).Hash)))
			}
		})
	}
	if n := reg.Asked(readToken); n != 1 {
		t.Errorf("the registry was asked %d times about the read token, want 1 (cached)", n)
	}
	srv.Close() // every request logged
	if l := logs.String(); strings.Contains(l, "secret") || !strings.Contains(l, "token registry "+reg.Host()) {
		t.Errorf("the log shows a token, or not the registry's failure:\n%s", l)
	}
}
