package keepweb

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// hrefs returns the links of a page, unescaped as a browser reads them.
func hrefs(t *testing.T, page string) []string {
	t.Helper()
	var out []string
	for _, m := range regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		out = append(out, htmlUnescape(m[1]))
	}
	return out
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}

func TestDirPage(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for _, tc := range []struct {
		dir   string
		names []string // the entries listed, in order
	}{
		{"", []string{"a.txt", "big.bin", "dir/", "empty", "emptydir/", "hostile/", "noext", "with space/"}},
		{"dir/", []string{"b.json", "empty sub/", "page.html", "sub/"}},
		{"hostile/", slices.Sorted(slices.Values(hostileNames))},
		{"emptydir/", nil},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			page := f.url(escapePath(tc.dir))
			resp, body := f.do(t, http.MethodGet, page)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("status %d, %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			html := string(body)
			if strings.Contains(html, "<script") || strings.Contains(html, `"quoted"`) {
				t.Errorf("a name is not escaped:\n%s", html)
			}
			links := hrefs(t, html)
			if !slices.Contains(links, "?download=zip") {
				t.Errorf("no zip link in %q", links)
			}
			var listed []string
			base, _ := url.Parse(page)
			for _, l := range links {
				if !strings.HasPrefix(l, "./") {
					continue
				}
				u, err := base.Parse(l)
				if err != nil || u.Host != base.Host || !strings.HasPrefix(u.Path, base.Path) {
					t.Errorf("link %q leads to %v (%v), outside %s", l, u, err, base)
					continue
				}
				listed = append(listed, strings.TrimPrefix(u.Path, base.Path))
				if resp, _ := f.do(t, http.MethodGet, u.String()); resp.StatusCode != http.StatusOK {
					t.Errorf("link %q: %d", l, resp.StatusCode)
				}
			}
			if !slices.Equal(listed, tc.names) {
				t.Errorf("listed %q, want %q", listed, tc.names)
			}
		})
	}
}

// A directory without its slash is redirected to it, its query kept.
func TestDirRedirect(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for path, want := range map[string]string{
		"":                     "/c=" + f.id + "/",
		"dir":                  "/c=" + f.id + "/dir/",
		"dir?download=zip":     "/c=" + f.id + "/dir/?download=zip",
		"with%20space":         "/c=" + f.id + "/with%20space/",
		"hostile/%23top":       "", // a file: no redirect
		"dir/sub?x=%2F&y=%3Cz": "/c=" + f.id + "/dir/sub/?x=%2F&y=%3Cz",
	} {
		u := f.srv.URL + "/c=" + f.id + "/" + path
		if path == "" {
			u = strings.TrimSuffix(u, "/")
		}
		resp, _ := f.do(t, http.MethodGet, u)
		if want == "" {
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d", path, resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d to %q, want 301 to %q", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

func TestZip(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for _, tc := range []struct{ dir, prefix, filename string }{
		{"", "", f.id + ".zip"},
		{"dir/", "dir/", "dir.zip"},
		{"hostile/", "hostile/", "hostile.zip"},
		{"emptydir/", "emptydir/", "emptydir.zip"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			resp, body := f.do(t, http.MethodGet, f.url(tc.dir)+"?download=zip")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" {
				t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, tc.filename) {
				t.Errorf("Content-Disposition %q, want filename %q", cd, tc.filename)
			}
			// (net/http gives a length to answers shorter than its buffer.)
			if len(body) > 4<<10 && resp.ContentLength != -1 {
				t.Errorf("zip sent with Content-Length %d: was it buffered?", resp.ContentLength)
			}
			checkZip(t, body, f.files, f.dirs, tc.prefix)
		})
	}
}

// checkZip checks that archive holds exactly the files and empty
// directories under prefix, stored uncompressed, with their content.
func checkZip(t *testing.T, archive []byte, files map[string][]byte, dirs []string, prefix string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for p, data := range files {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			want[rest] = data
		}
	}
	for _, d := range dirs {
		if rest, ok := strings.CutPrefix(d, prefix); ok {
			want[rest+"/"] = nil
		}
	}
	for _, zf := range zr.File {
		data, ok := want[zf.Name]
		if !ok {
			t.Errorf("unexpected entry %q", zf.Name)
			continue
		}
		delete(want, zf.Name)
		if zf.Method != zip.Store {
			t.Errorf("%s: method %d, want Store", zf.Name, zf.Method)
		}
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc) // checks the CRC too
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes (%v), want %d", zf.Name, len(got), err, len(data))
		}
	}
	for name := range want {
		t.Errorf("missing entry %q", name)
	}
}

// Small files packed into one block cost one fetch of it.
func TestZipFetchesEachBlockOnce(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	before := len(f.c.Requests())
	resp, _ := f.do(t, http.MethodGet, f.url("")+"?download=zip")
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	gets := map[string]int{}
	for _, r := range f.c.Requests()[before:] {
		if r.Method == http.MethodGet && r.Status == http.StatusOK {
			gets[r.Path[1:33]]++
		}
	}
	for _, b := range f.m.Blocks() {
		if gets[b.Hash] != 1 {
			t.Errorf("block %s fetched %d times", b.Hash, gets[b.Hash])
		}
	}
}
