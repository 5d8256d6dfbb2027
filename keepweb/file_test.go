package keepweb

import (
	"bytes"
	"fmt"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestGetFile(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for path, want := range f.files {
		t.Run(path, func(t *testing.T) {
			resp, body := f.do(t, http.MethodGet, f.url(escapePath(path)))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if !bytes.Equal(body, want) {
				t.Errorf("got %d bytes, want %d", len(body), len(want))
			}
			if got := resp.Header.Get("Content-Length"); got != fmt.Sprint(len(want)) {
				t.Errorf("Content-Length %q, want %d", got, len(want))
			}
		})
	}
}

// escapePath escapes each part of a slash-separated path.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func TestNotFound(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for _, u := range []string{
		f.url("nope.txt"),
		f.url("dir/nope/"),
		f.url("a.txt/"),
		f.srv.URL + "/c=acbd18db4cc2f85cedef654fccc4a4d8+3/",
		f.srv.URL + "/c=not-a-collection/",
		f.srv.URL + "/elsewhere",
	} {
		if resp, body := f.do(t, http.MethodGet, u); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404: %s", u, resp.StatusCode, body)
		}
	}
}

func TestRange(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	big := f.files["big.bin"]
	n := len(big)
	for _, tc := range []struct {
		rng      string
		status   int
		from, to int // the part expected, [from, to)
	}{
		{"bytes=0-9", 206, 0, 10},
		{"bytes=995-1004", 206, 995, 1005}, // across a block boundary
		{"bytes=2500-7499", 206, 2500, 7500},
		{"bytes=-10", 206, n - 10, n}, // suffix
		{"bytes=9990-", 206, 9990, n}, // open-ended
		{fmt.Sprintf("bytes=0-%d", n+100), 206, 0, n},
		{fmt.Sprintf("bytes=%d-", n), 416, 0, 0},
		{"bytes=5-2", 416, 0, 0},
		{"items=0-1", 416, 0, 0}, // net/http knows bytes only
	} {
		t.Run(tc.rng, func(t *testing.T) {
			resp, body := f.do(t, http.MethodGet, f.url("big.bin"), "Range", tc.rng)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %q", resp.StatusCode, tc.status, body)
			}
			if tc.status == 416 {
				return
			}
			if !bytes.Equal(body, big[tc.from:tc.to]) {
				t.Errorf("got %d bytes, not bytes %d-%d", len(body), tc.from, tc.to)
			}
		})
	}
}

// Several ranges are answered as multipart/byteranges, as net/http
// serves them.
func TestMultiRange(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	big := f.files["big.bin"]
	resp, body := f.do(t, http.MethodGet, f.url("big.bin"), "Range", "bytes=0-9,3000-3999,-5")
	if resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, want := range [][]byte{big[:10], big[3000:4000], big[len(big)-5:]} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		got.ReadFrom(p)
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("part %s: %d bytes differ", p.Header.Get("Content-Range"), got.Len())
		}
	}
}

func TestHead(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	before := len(f.c.Requests())
	resp, body := f.do(t, http.MethodHead, f.url("big.bin"))
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("status %d, %d bytes of body", resp.StatusCode, len(body))
	}
	if got := resp.Header.Get("Content-Length"); got != fmt.Sprint(len(f.files["big.bin"])) {
		t.Errorf("Content-Length %q", got)
	}
	if resp.Header.Get("ETag") == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("headers %v", resp.Header)
	}
	// The manifest, and nothing of the file.
	if got := len(f.c.Requests()) - before; got != 1 {
		t.Errorf("HEAD sent %d requests to the servers, want 1 (the manifest)", got)
	}
}

func TestETag(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	tags := map[string]string{}
	for _, p := range []string{"a.txt", "big.bin", "dir/b.json"} {
		resp, _ := f.do(t, http.MethodGet, f.url(p))
		tag := resp.Header.Get("ETag")
		if !strings.HasPrefix(tag, `"`) || len(tag) < 10 {
			t.Fatalf("%s: ETag %q", p, tag)
		}
		if other, ok := tags[tag]; ok {
			t.Errorf("%s and %s have the same ETag %s", p, other, tag)
		}
		tags[tag] = p
		for _, tc := range []struct {
			inm    string
			status int
		}{
			{tag, http.StatusNotModified},
			{`"other", ` + tag, http.StatusNotModified},
			{"*", http.StatusNotModified},
			{`"other"`, http.StatusOK},
		} {
			if resp, _ := f.do(t, http.MethodGet, f.url(p), "If-None-Match", tc.inm); resp.StatusCode != tc.status {
				t.Errorf("%s If-None-Match %s: %d, want %d", p, tc.inm, resp.StatusCode, tc.status)
			}
		}
		// If-Range with the tag honours the range; with another, the
		// whole file.
		if resp, body := f.do(t, http.MethodGet, f.url(p), "Range", "bytes=0-1", "If-Range", tag); resp.StatusCode != 206 || len(body) != 2 {
			t.Errorf("%s If-Range (same tag): %d, %d bytes", p, resp.StatusCode, len(body))
		}
		if resp, _ := f.do(t, http.MethodGet, f.url(p), "Range", "bytes=0-1", "If-Range", `"old"`); resp.StatusCode != 200 {
			t.Errorf("%s If-Range (old tag): %d, want 200", p, resp.StatusCode)
		}
	}
}

func TestContentType(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	for _, tc := range []struct {
		path, ctype string
		attachment  bool
	}{
		{"a.txt", "text/plain; charset=utf-8", false},
		{"dir/b.json", "application/json", false},
		{"dir/sub/image.png", "image/png", false},
		{"noext", "application/octet-stream", false},
		{"empty", "application/octet-stream", false},
		{"dir/page.html", "text/html; charset=utf-8", true}, // would run script here
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, _ := f.do(t, http.MethodGet, f.url(tc.path))
			if got := resp.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment"); got != tc.attachment {
				t.Errorf("Content-Disposition %q", resp.Header.Get("Content-Disposition"))
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no X-Content-Type-Options: nosniff")
			}
		})
	}
}

// Downloads over MaxDownloads get 503 with Retry-After; HEAD, pages and
// listings, which hold no blocks, are answered.
func TestMaxDownloads(t *testing.T) {
	f := newFixture(t, fixtureConfig{opts: func(o *Options) { o.MaxDownloads = 1 }})
	f.h.slots <- struct{}{} // a download in progress
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "big.bin", http.StatusServiceUnavailable},
		{"GET", "?download=zip", http.StatusServiceUnavailable},
		{"HEAD", "big.bin", http.StatusOK},
		{"GET", "", http.StatusOK},
		{"PROPFIND", "", http.StatusMultiStatus},
	} {
		resp, _ := f.do(t, tc.method, f.url(tc.path))
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if tc.status == http.StatusServiceUnavailable && (resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Disposition") != "") {
			t.Errorf("%s %s: headers %v", tc.method, tc.path, resp.Header)
		}
	}
	<-f.h.slots // it ends
	for _, path := range []string{"big.bin", "?download=zip", "big.bin"} {
		if resp, _ := f.do(t, "GET", f.url(path)); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s after: %d", path, resp.StatusCode)
		}
	}
}
