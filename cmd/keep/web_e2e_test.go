package main

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
)

// keep web in front of keep server processes serves what keep put
// --store-manifest stored: a file (whole and by range), a directory
// page, the zip, a WebDAV listing; it refuses writes and requests
// without a token unless --anonymous.
func TestE2EWeb(t *testing.T) {
	env := proctest.Env(t)
	svcFile, _, _ := startServers(t, env, 2)
	src := t.TempDir()
	big, data := randomFile(t, 3<<20+17)
	os.MkdirAll(filepath.Join(src, "docs"), 0o755)
	os.Rename(big, filepath.Join(src, "docs", "big.bin"))
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("hello\n"), 0o644)
	out, stderr, err := proctest.Run(t, env, nil, "put", "--replicas", "2", "--services", svcFile, "--store-manifest", src+"/.")
	if err != nil {
		t.Fatalf("keep put: %v\n%s", err, stderr)
	}
	id := strings.TrimSpace(out)
	_, addr := proctest.Listen(t, env, "keep web listening", "web", "--listen", "127.0.0.1:0", "--services", svcFile)
	_, anonAddr := proctest.Listen(t, env, "keep web listening", "web", "--listen", "127.0.0.1:0", "--services", svcFile, "--anonymous")
	name := filepath.Base(src)
	base := "http://" + addr.String() + "/c=" + id + "/" + name + "/"
	get := func(method, url, token string, headers ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	if resp, body := get("GET", base+"docs/big.bin", "t"); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Errorf("big.bin: %d, %d bytes of %d", resp.StatusCode, len(body), len(data))
	}
	if resp, body := get("GET", base+"docs/big.bin", "t", "Range", "bytes=1000-1999"); resp.StatusCode != 206 || !bytes.Equal(body, data[1000:2000]) {
		t.Errorf("a range of big.bin: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, body := get("GET", base, "t"); resp.StatusCode != 200 || !strings.Contains(string(body), `href="./hello.txt"`) {
		t.Errorf("directory page: %d\n%s", resp.StatusCode, body)
	}
	resp, body := get("GET", base+"?download=zip", "t")
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if resp.StatusCode != 200 || err != nil || len(zr.File) != 2 {
		t.Fatalf("zip: %d, %v", resp.StatusCode, err)
	}
	if resp, body := get("PROPFIND", base, "t", "Depth", "1"); resp.StatusCode != 207 || !strings.Contains(string(body), "hello.txt") {
		t.Errorf("PROPFIND: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := get("PUT", base+"new.txt", "t"); resp.StatusCode != 405 {
		t.Errorf("PUT: %d, want 405", resp.StatusCode)
	}
	if resp, _ := get("GET", base+"hello.txt", ""); resp.StatusCode != 401 {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
	anon := strings.Replace(base, addr.String(), anonAddr.String(), 1)
	if resp, body := get("GET", anon+"hello.txt", ""); resp.StatusCode != 200 || string(body) != "hello\n" {
		t.Errorf("no token, --anonymous: %d %q", resp.StatusCode, body)
	}
}

func TestE2EWebUsage(t *testing.T) {
	env := proctest.Env(t)
	for _, args := range [][]string{
		{"web", "extra"},
		{"web", "--tls-cert", "x"},
		{"web", "--blocks-ahead", "0"},
		{"web", "--max-downloads", "0"},
	} {
		_, stderr, err := proctest.Run(t, env, nil, args...)
		if code := exitCode(err); code != 2 {
			t.Errorf("keep %s: exit %d, want 2\n%s", strings.Join(args, " "), code, stderr)
		}
	}
}

// keep web in front of a registry and block servers that require
// signatures: a collection is found by uuid, name or portable data hash
// with the caller's token, the registry signs its manifest for that
// token, and the blocks are read with it; a token the registry does not
// know gets 401.
func TestE2EWebRegistry(t *testing.T) {
	r := startRegCluster(t, filepath.Join(t.TempDir(), "registry.db"))
	data := bytes.Repeat([]byte("keep web through the registry\n"), 100000)
	uuid, _ := r.put("web results", 2, data)
	pdh := strings.TrimSpace(r.call("GET", "/arvados/v1/collections/"+uuid, nil)["portable_data_hash"].(string))
	_, addr := proctest.Listen(t, r.reader, "keep web listening", "web", "--listen", "127.0.0.1:0", "--services", r.svcFile)
	reader := strings.TrimPrefix(r.reader[len(r.reader)-1], "ARVADOS_API_TOKEN=")
	for _, tc := range []struct {
		id, token string
		status    int
	}{
		{uuid, reader, http.StatusOK},
		{"web%20results", reader, http.StatusOK},
		{pdh, reader, http.StatusOK},
		{uuid, r.writer, http.StatusOK},
		{uuid, "v2/zzzzz-gj3su-000000000000000/unknown", http.StatusUnauthorized},
		{"zzzzz-4zz18-000000000000000", reader, http.StatusNotFound},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr.String()+"/c="+tc.id+"/data", nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.id, resp.StatusCode, tc.status, body)
		} else if tc.status == http.StatusOK && !bytes.Equal(body, data) {
			t.Errorf("%s: %d bytes differ from the %d put", tc.id, len(body), len(data))
		}
	}
}
