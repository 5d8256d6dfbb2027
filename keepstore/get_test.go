package keepstore_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keepproject/keep/keepstore"
)

// corrupt replaces the stored copy of data's block in dir with bad.
func corrupt(t *testing.T, dir string, data, bad []byte) {
	t.Helper()
	h := hashOf(data)
	os.MkdirAll(filepath.Join(dir, h[:3]), 0o755)
	if err := os.WriteFile(filepath.Join(dir, h[:3], h), bad, 0o644); err != nil {
		t.Fatal(err)
	}
}

// takeTrashed checks that dir's trash holds exactly one copy of data's
// block, the corrupt copy bad, and removes it. Each corrupt copy is
// checked and taken out as soon as it is trashed: a trashed copy's name
// carries its deadline in whole seconds, so whether two copies trashed
// one after the other leave one file or two depends on whether a second
// ticked over between them.
func takeTrashed(t *testing.T, dir, what string, data, bad []byte) {
	t.Helper()
	h := hashOf(data)
	trashed, _ := filepath.Glob(filepath.Join(dir, h[:3], h+".trash.*"))
	if len(trashed) != 1 {
		t.Errorf("%s: trashed copies %v, want one", what, trashed)
	}
	for _, p := range trashed {
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, bad) {
			t.Errorf("%s: trashed copy %s holds %d bytes (%v), want the %d corrupt ones", what, p, len(got), err, len(bad))
		}
		os.Remove(p)
	}
}

// TestCorruptBlock: a copy that fails its hash on GET or HEAD is never
// sent whole, and is moved to the trash, once.
func TestCorruptBlock(t *testing.T) {
	ts := start(t, keepstore.Config{})
	small := []byte("foo")
	// Over two 1 MiB chunks, so some of it is sent before the mismatch.
	big := bytes.Repeat([]byte("0123456789abcdef"), (2<<20)/16+1)
	badBig := bytes.Clone(big)
	badBig[len(badBig)-1] ^= 1
	for _, c := range []struct {
		name      string
		data, bad []byte
	}{{"small", small, []byte("fox")}, {"big", big, badBig}} {
		loc := "/" + hashOf(c.data) + "+" + strconv.Itoa(len(c.data))
		corrupt(t, ts.dirs[0], c.data, c.bad)
		resp, err := ts.Client().Get(ts.URL + loc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != int64(len(c.data)) || err == nil || len(got) >= len(c.data) {
			t.Errorf("%s: GET of corrupt block: %d, Content-Length %d, read %d bytes, err %v; want 200 and a short body",
				c.name, resp.StatusCode, resp.ContentLength, len(got), err)
		}
		// The corrupt copy was moved to the trash: no longer served.
		if code, body, _ := ts.do(t, "HEAD", loc, "", nil); code != http.StatusNotFound {
			t.Errorf("%s: HEAD after a corrupt GET = %d %q, want 404 (copy moved aside)", c.name, code, body)
		}
		takeTrashed(t, ts.dirs[0], c.name+" after GET", c.data, c.bad)
		corrupt(t, ts.dirs[0], c.data, c.bad)
		if code, body, _ := ts.do(t, "HEAD", loc, "", nil); code != http.StatusBadGateway {
			t.Errorf("%s: HEAD of corrupt block = %d %q, want 502", c.name, code, body)
		}
		if code, _, _ := ts.do(t, "HEAD", loc, "", nil); code != http.StatusNotFound {
			t.Errorf("%s: HEAD after a corrupt HEAD = %d, want 404 (copy moved aside)", c.name, code)
		}
		takeTrashed(t, ts.dirs[0], c.name+" after HEAD", c.data, c.bad)
	}
	if _, body, _ := ts.do(t, "GET", "/metrics", mgmtToken, nil); !strings.Contains(body, "keepstore_corrupt_blocks_total 4") {
		t.Errorf("metrics do not count 4 corrupt copies:\n%s", body)
	}
	ts.waitLog(t, "stored block is corrupt")
	if code, _, _ := ts.do(t, "GET", "/_health/ping", mgmtToken, nil); code != 200 {
		t.Error("server not serving after corrupt reads")
	}
}

// TestReadFallback: a missing or corrupt copy on the first volume in
// probe order is skipped for a good one on the next.
func TestReadFallback(t *testing.T) {
	ts := start(t, keepstore.Config{Volumes: dirVolumes(t, 2)})
	data := []byte("fallback data")
	ts.put(t, data)
	h := hashOf(data)
	var on, other string
	for i, d := range ts.dirs {
		if _, err := os.Stat(filepath.Join(d, h[:3], h)); err == nil {
			on, other = d, ts.dirs[1-i]
		}
	}
	// Good copy on the volume tried second, bad on the one tried first.
	corrupt(t, other, data, []byte("fallback dat4"))
	for range 2 {
		if code, body, _ := ts.do(t, "GET", "/"+h+"+13", "", nil); code != 200 || body != string(data) {
			t.Errorf("GET with one corrupt copy = %d %q", code, body)
		}
		if code, _, _ := ts.do(t, "HEAD", "/"+h+"+13", "", nil); code != 200 {
			t.Errorf("HEAD with one corrupt copy = %d", code)
		}
		on, other = other, on
		// Now swap roles: corrupt copy and good copy exchange volumes.
		os.WriteFile(filepath.Join(on, h[:3], h), data, 0o644)
		os.WriteFile(filepath.Join(other, h[:3], h), []byte("fallback dat4"), 0o644)
	}
}

// TestGetSendsWholeBlock: a block of several chunks comes back exact over
// a plain connection (each chunk sent from the file, sendfile) and over
// TLS (written from the buffer), with Content-Length and the bytes
// counted in the log.
func TestGetSendsWholeBlock(t *testing.T) {
	ts := start(t, keepstore.Config{})
	data := make([]byte, 3<<20+4321)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	ts.put(t, data)
	loc := "/" + hashOf(data) + "+" + strconv.Itoa(len(data))
	tlsSrv := httptest.NewTLSServer(ts.srv)
	defer tlsSrv.Close()
	for _, c := range []struct {
		name   string
		url    string
		client *http.Client
	}{{"plain", ts.URL, ts.Client()}, {"TLS", tlsSrv.URL, tlsSrv.Client()}} {
		resp, err := c.client.Get(c.url + loc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(data)) || !bytes.Equal(got, data) {
			t.Errorf("%s: GET = %d, Content-Length %d, %d bytes (%v), equal %v", c.name, resp.StatusCode, resp.ContentLength, len(got), err, bytes.Equal(got, data))
		}
	}
	ts.waitLog(t, "bytes_out="+strconv.Itoa(len(data)))
}
