package keepweb

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// multistatus is the part of a PROPFIND answer the tests read.
type multistatus struct {
	Responses []struct {
		Href string `xml:"href"`
		Prop struct {
			Length     string    `xml:"getcontentlength"`
			Type       string    `xml:"getcontenttype"`
			ETag       string    `xml:"getetag"`
			Collection *struct{} `xml:"resourcetype>collection"`
		} `xml:"propstat>prop"`
	} `xml:"response"`
}

func propfind(t *testing.T, f *fixture, path, depth string) multistatus {
	t.Helper()
	resp, body := f.do(t, "PROPFIND", f.url(path), "Depth", depth)
	if resp.StatusCode != http.StatusMultiStatus {
		t.Fatalf("PROPFIND %s: %d: %s", path, resp.StatusCode, body)
	}
	var ms multistatus
	if err := xml.Unmarshal(body, &ms); err != nil {
		t.Fatalf("PROPFIND %s: %v\n%s", path, err, body)
	}
	return ms
}

func TestWebDAVPropfind(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	before := len(f.c.Requests())
	for _, tc := range []struct {
		path, depth string
		want        []string // hrefs relative to the collection
	}{
		{"", "1", []string{"/", "/a.txt", "/big.bin", "/dir/", "/empty", "/emptydir/", "/hostile/", "/noext", "/with%20space/"}},
		{"dir/", "1", []string{"/dir/", "/dir/b.json", "/dir/empty%20sub/", "/dir/page.html", "/dir/sub/"}},
		{"dir/", "infinity", []string{"/dir/", "/dir/b.json", "/dir/empty%20sub/", "/dir/page.html", "/dir/sub/", "/dir/sub/deep.csv", "/dir/sub/image.png"}},
		{"a.txt", "0", []string{"/a.txt"}},
	} {
		t.Run(tc.path+" depth "+tc.depth, func(t *testing.T) {
			ms := propfind(t, f, tc.path, tc.depth)
			var got []string
			prefix := "/c=" + url.PathEscape(f.id)
			for _, r := range ms.Responses {
				href, _ := url.PathUnescape(r.Href)
				rel := strings.TrimPrefix(href, "/c="+f.id)
				if rel == href {
					t.Errorf("href %q is not under %s", r.Href, prefix)
				}
				got = append(got, (&url.URL{Path: rel}).EscapedPath())
				name := strings.TrimPrefix(rel, "/")
				if data, ok := f.files[name]; ok {
					if r.Prop.Length != fmt.Sprint(len(data)) || r.Prop.ETag == "" || r.Prop.Collection != nil {
						t.Errorf("%s: length %q etag %q", name, r.Prop.Length, r.Prop.ETag)
					}
				} else if r.Prop.Collection == nil {
					t.Errorf("%s is not a collection", rel)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// Listing reads the manifest only: no block of any file.
	for _, r := range f.c.Requests()[before:] {
		if !strings.HasPrefix(r.Path[1:], f.id[:32]) {
			t.Errorf("PROPFIND read block %s", r.Path)
		}
	}
}

// The ETag a WebDAV client sees is the one GET sends.
func TestWebDAVETagMatchesGet(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	ms := propfind(t, f, "big.bin", "0")
	resp, _ := f.do(t, http.MethodGet, f.url("big.bin"))
	if len(ms.Responses) != 1 || ms.Responses[0].Prop.ETag != resp.Header.Get("ETag") {
		t.Errorf("PROPFIND ETag %+v, GET %q", ms.Responses, resp.Header.Get("ETag"))
	}
}

func TestWebDAVRefusesWrites(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for _, method := range []string{"PUT", "DELETE", "MKCOL", "MOVE", "COPY", "PROPPATCH", "LOCK", "UNLOCK", "POST", "PATCH"} {
		for _, path := range []string{"a.txt", "new.txt", "dir/", "newdir/"} {
			resp, _ := f.do(t, method, f.url(path), "Destination", f.url("moved"))
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", method, path, resp.StatusCode)
			}
		}
	}
	// Still there, unchanged.
	if resp, body := f.do(t, http.MethodGet, f.url("a.txt")); resp.StatusCode != 200 || string(body) != string(f.files["a.txt"]) {
		t.Errorf("a.txt after the writes: %d %q", resp.StatusCode, body)
	}
	resp, _ := f.do(t, http.MethodOptions, f.url(""))
	if allow := resp.Header.Get("Allow"); strings.Contains(allow, "PUT") || !strings.Contains(allow, "PROPFIND") || resp.Header.Get("DAV") == "" {
		t.Errorf("OPTIONS: Allow %q, DAV %q", allow, resp.Header.Get("DAV"))
	}
}

// The read-only file system refuses writes itself too, for any method
// that would reach it.
func TestDavFSRefusesWrites(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	c, err := f.h.load(t.Context(), testToken, f.id)
	if err != nil {
		t.Fatal(err)
	}
	fs := &davFS{c: c}
	ctx := t.Context()
	if err := fs.Mkdir(ctx, "/x", 0o755); err == nil {
		t.Error("Mkdir succeeded")
	}
	if err := fs.RemoveAll(ctx, "/a.txt"); err == nil {
		t.Error("RemoveAll succeeded")
	}
	if err := fs.Rename(ctx, "/a.txt", "/b.txt"); err == nil {
		t.Error("Rename succeeded")
	}
	for _, flag := range []int{1, 2, 0o100, 0o1000, 0o2000} { // O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND
		if _, err := fs.OpenFile(ctx, "/a.txt", flag, 0); err == nil {
			t.Errorf("OpenFile flag %#o succeeded", flag)
		}
	}
	file, err := fs.OpenFile(ctx, "/a.txt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.Write([]byte("x")); err == nil {
		t.Error("Write succeeded")
	}
}
