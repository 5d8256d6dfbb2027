package keepweb

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
)

// A server that fails during a download, in any of the ways servers
// fail, is passed over for the next copy of each block; the download
// is whole and right.
func TestServerFailsMidRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(s *keeptest.Server)
	}{
		{"killed", func(s *keeptest.Server) { s.Kill() }},
		{"stalls after sending part of a block", func(s *keeptest.Server) {
			s.SetGetDefault(keeptest.Response{Stall: true, StallAfter: 100})
		}},
		{"resets the connection", func(s *keeptest.Server) { s.SetGetDefault(keeptest.Response{Reset: true}) }},
		{"answers 500", func(s *keeptest.Server) { s.SetGetDefault(keeptest.Response{Status: 500}) }},
		{"corrupt copies", func(s *keeptest.Server) { s.SetCorrupt(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureConfig{kcOpts: func(o *keepclient.Options) {
				// A stalled answer is given up quickly; a healthy one
				// never stalls this long on loopback.
				o.StallTimeout = time.Second
				o.DownHold = -1
			}})
			bad := f.c.Server(0)
			before := len(bad.Requests())
			tc.fault(bad)
			for _, path := range []string{"big.bin", "?download=zip"} {
				resp, body := f.do(t, http.MethodGet, f.url(path))
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d", path, resp.StatusCode)
				}
				if path == "big.bin" && !bytes.Equal(body, f.files["big.bin"]) {
					t.Errorf("%s: %d bytes differ from the file's %d", path, len(body), len(f.files["big.bin"]))
				}
				if path != "big.bin" {
					checkZip(t, body, f.files, f.dirs, "")
				}
			}
			if tc.name != "killed" && len(bad.Requests()) == before {
				t.Errorf("the failing server was never asked: the test tests nothing")
			}
		})
	}
}

// A block no server can give ends the download early (the connection
// is closed short of Content-Length), never with wrong bytes.
func TestUnreadableBlockCutsDownload(t *testing.T) {
	f := newFixture(t, fixtureConfig{kcOpts: func(o *keepclient.Options) { o.MaxPasses = 1 }})
	big := f.files["big.bin"]
	// The second block of big.bin is lost everywhere.
	var lost string
	for _, f := range f.m.Files {
		if f.Path == "big.bin" {
			lost = f.Segments[1].Block.Hash
		}
	}
	for _, s := range f.c.Servers() {
		s.Delete(lost)
	}
	req, _ := http.NewRequest(http.MethodGet, f.url("big.bin"), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got bytes.Buffer
	_, err = got.ReadFrom(resp.Body)
	if err == nil || got.Len() >= len(big) {
		t.Fatalf("read %d of %d bytes, err %v: want an early end", got.Len(), len(big), err)
	}
	if !bytes.Equal(got.Bytes(), big[:got.Len()]) {
		t.Error("the bytes sent before the end are wrong")
	}
}
