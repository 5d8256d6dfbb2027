package keepproxy_test

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepproxy"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// emptyHash names the empty block.
var emptyHash = locator.New(nil).Hash

// FuzzProxyRequest feeds raw requests through http.ReadRequest to a proxy
// in front of a keeptest cluster. Whatever the bytes, the proxy must not
// panic, must answer with a valid status, and must never leave a block
// on a server whose content does not hash to its name; a PUT it answers
// 200 must be stored.
func FuzzProxyRequest(f *testing.F) {
	data := "fuzzed block"
	hash := locator.New([]byte(data)).Hash
	loc := "/" + hash
	for _, seed := range []string{
		rawPut(loc, data),
		rawPut(loc+"+12", data, "X-Keep-Desired-Replicas: 3", "X-Keep-Storage-Classes: default, hot"),
		rawPut(loc, data, "X-Keep-Desired-Replicas: 0"),
		rawPut(loc, "other data"),
		rawPut("/"+emptyHash, ""),
		rawReq("GET", loc+"+12", nil, ""),
		rawReq("GET", loc+"+12+Kzzzzz+Afff@1234", nil, ""),
		rawReq("HEAD", loc, nil, ""),
		rawReq("OPTIONS", loc, nil, ""),
		rawReq("GET", "/_health/ping", nil, ""),
		rawReq("PUT", loc, []string{"Content-Length: 100"}, data),
		rawReq("PUT", loc, []string{"Transfer-Encoding: chunked"}, "c\r\nfuzzed block\r\n0\r\n\r\n"),
		rawPut(loc, data, "Via: 1.1 keepproxy"),
		rawPut(loc, data, "Authorization: OAuth2 x"),
		rawPut(loc+"+12+A"+strings.Repeat("f", 40)+"@12345678", data),
		rawReq("DELETE", "/../"+hash, nil, ""),
	} {
		f.Add([]byte(seed))
	}
	c := keeptest.NewCluster(f, 3)
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), RetryDelay: time.Millisecond, MaxPasses: 1})
	if err != nil {
		f.Fatal(err)
	}
	px := keepproxy.NewWithOptions(kc, keepproxy.Options{MaxWrites: 4, MaxReads: 4})
	f.Cleanup(func() {
		px.Close()
		kc.Close()
	})
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		defer req.Body.Close()
		rec := httptest.NewRecorder()
		px.ServeHTTP(rec, req)
		if rec.Code < 100 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		// The block the path names, if it names one, is either absent or
		// stored under its true hash on every server.
		name := strings.TrimPrefix(req.URL.Path, "/")
		name, _, _ = strings.Cut(name, "+")
		if len(name) != 32 {
			return
		}
		holders := 0
		for _, s := range c.Servers() {
			if b, ok := s.Block(name); ok {
				holders++
				if sum := md5.Sum(b); hex.EncodeToString(sum[:]) != name {
					t.Fatalf("server %s holds %d bytes under %s that hash to %x", s, len(b), name, sum)
				}
			}
		}
		// A stored PUT is on a server, except the empty block, which
		// keepclient never uploads: every reader can produce it.
		stored := rec.Header().Get("X-Keep-Replicas-Stored")
		if req.Method == http.MethodPut && rec.Code == 200 {
			if stored == "" {
				t.Fatal("PUT answered 200 without X-Keep-Replicas-Stored")
			}
			if stored != "0" && holders == 0 && name != emptyHash {
				t.Fatalf("PUT answered 200 (%s replicas) but no server holds %s", stored, name)
			}
		}
	})
}
