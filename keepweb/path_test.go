package keepweb

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keepproject/keep/keeptest"
)

// Paths sent as raw request lines, as no client library would send
// them: each is refused, and none reaches a file.
func TestPathTricks(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	c := "/c=" + f.id
	for _, tc := range []struct {
		name, target string
		status       int
	}{
		{"dot-dot", c + "/dir/../a.txt", 400},
		{"dot-dot at the end", c + "/dir/..", 400},
		{"dot-dot out of the collection", c + "/../c=" + f.id + "/a.txt", 400},
		{"encoded dot-dot", c + "/dir/%2e%2e/a.txt", 400},
		{"half-encoded dot-dot", c + "/dir/.%2E/a.txt", 400},
		{"dot", c + "/./a.txt", 400},
		{"empty part", c + "//a.txt", 400},
		{"encoded slash", c + "/dir%2fb.json", 400},
		{"encoded slash, upper case", c + "/dir%2Fb.json", 400},
		{"encoded slash in the id", "/c=" + strings.Replace(f.id, "+", "%2F", 1) + "/a.txt", 400},
		{"backslash", c + `/dir\b.json`, 400},
		{"encoded backslash", c + "/dir%5cb.json", 400},
		{"backslash dot-dot", c + `/dir\..\a.txt`, 400},
		{"NUL", c + "/a.txt%00.png", 400},
		{"control character", c + "/a.txt%0a", 400},
		{"overlong UTF-8 dot-dot", c + "/dir/%c0%ae%c0%ae/a.txt", 400},
		{"invalid UTF-8", c + "/a%ff.txt", 400},
		{"no collection id", "/c=/a.txt", 400},
		{"not under /c=", "/etc/passwd", 404},
		{"dot-dot before /c=", "/../c=" + f.id + "/a.txt", 404},
		{"asterisk", "*", 400},
		{"absolute form, dot-dot", "http://keep" + c + "/dir/../a.txt", 400},
		{"the same file, plainly", c + "/a.txt", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := keeptest.RawRequest("GET", tc.target, testToken, []string{"Connection: close"}, "")
			resp, body := keeptest.RawExchange(t, f.srv.Listener.Addr().String(), req, false)
			if resp.StatusCode != tc.status {
				t.Errorf("GET %s: %d, want %d: %q", tc.target, resp.StatusCode, tc.status, body)
			}
			if tc.status != http.StatusOK && strings.Contains(body, string(f.files["a.txt"])) {
				t.Errorf("GET %s: answered the file", tc.target)
			}
		})
	}
}
