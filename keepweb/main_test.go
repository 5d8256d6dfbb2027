package keepweb

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		// The keep binary BenchmarkDownload built for its servers.
		proctest.RemoveBinary()
		os.Exit(code)
	}))
}

// testToken is the token the fixture's files are stored and read with.
const testToken = "web-test-token"

// testBlockSize is small, so that files span several blocks and small
// files share one.
const testBlockSize = 1000

// hostileNames are file names a directory page must escape, and links
// must not turn into anything but a relative path.
var hostileNames = []string{
	`<script>alert(1)<script>.txt`,
	`<img src=x onerror=alert(1)>`,
	`javascript:alert(1)`,
	`a "quoted" & 'single' name`,
	`q?x=1#frag`,
	`100%.txt`,
	`@evil.example`,
	`..hidden`,
	`#top`,
	`ünïcødé ☃.txt`,
}

// fixture is a cluster holding one collection, stored as a manifest
// block, and a keep web server in front of it.
type fixture struct {
	c     *keeptest.Cluster
	kc    *keepclient.Client
	files map[string][]byte // content by path
	dirs  []string          // empty directories
	m     *manifest.Manifest
	id    string // the stored manifest's locator
	srv   *httptest.Server
	h     *Handler
}

// fixtureConfig adjusts newFixture.
type fixtureConfig struct {
	servers int
	sign    bool // servers sign and check signatures
	opts    func(*Options)
	kcOpts  func(*keepclient.Options)
}

// newFixture stores the test collection on a new cluster and serves it.
func newFixture(t testing.TB, cfg fixtureConfig) *fixture {
	t.Helper()
	if cfg.servers == 0 {
		cfg.servers = 3
	}
	f := &fixture{c: keeptest.NewCluster(t, cfg.servers), files: testFiles(), dirs: []string{"emptydir", "dir/empty sub"}}
	if cfg.sign {
		f.c.SetSigner(locator.Signer{Key: []byte("web-test-key"), TTL: time.Hour})
		f.c.RequireSignatures(true)
	}
	ko := keepclient.Options{Services: f.c.Services(), Token: testToken, Replicas: 2}
	if cfg.kcOpts != nil {
		cfg.kcOpts(&ko)
	}
	kc, err := keepclient.New(ko)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	f.kc = kc
	f.m, f.id = storeCollection(t, kc, f.files, f.dirs)
	opts := Options{Client: kc}
	if cfg.opts != nil {
		cfg.opts(&opts)
	}
	if f.h, err = New(opts); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.h)
	t.Cleanup(f.srv.Close)
	return f
}

// testFiles returns the test collection's files.
func testFiles() map[string][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 10*testBlockSize+337)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	files := map[string][]byte{
		"a.txt":                 []byte("hello, keep web\n"),
		"big.bin":               big,
		"empty":                 nil,
		"dir/b.json":            []byte(`{"x": 1}`),
		"dir/page.html":         []byte("<html><script>alert(document.cookie)</script></html>"),
		"dir/sub/deep.csv":      []byte("a,b\n1,2\n"),
		"dir/sub/image.png":     []byte("\x89PNG\r\n\x1a\nnot really"),
		"noext":                 []byte("what am I"),
		"with space/file 1.txt": []byte("spaced out"),
	}
	for i, n := range hostileNames {
		files["hostile/"+n] = []byte(strings.Repeat(string(rune('A'+i)), 10+i))
	}
	return files
}

// storeCollection packs files into blocks of testBlockSize, stores them
// and the manifest (as put --store-manifest does), and returns the
// manifest and the stored manifest's locator.
func storeCollection(t testing.TB, kc *keepclient.Client, files map[string][]byte, dirs []string) (*manifest.Manifest, string) {
	t.Helper()
	ctx := context.Background()
	m := keeptest.PackFiles(t, files, dirs, testBlockSize, func(data []byte) (locator.Locator, error) {
		res, err := kc.Put(ctx, data, keepclient.PutOptions{})
		return res.Locator, err
	})
	res, err := kc.Put(ctx, []byte(m.Text()), keepclient.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m, res.Locator.String()
}

// url returns the URL of path in the fixture's collection.
func (f *fixture) url(path string) string { return f.srv.URL + "/c=" + f.id + "/" + path }

// do sends a request with the test token (unless headers say otherwise)
// and returns the response and its body. Redirects are not followed.
func (f *fixture) do(t testing.TB, method, url string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, body
}
