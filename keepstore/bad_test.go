package keepstore_test

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

// TestBadRequests sends malformed or refused requests over raw TCP and
// checks the status, that nothing was stored (no block, no temporary
// file), and that the server still takes a good PUT afterwards.
func TestBadRequests(t *testing.T) {
	ts := start(t, keepstore.Config{})
	foo := hashOf([]byte("foo"))
	noAuth := func(method, path string, hdr ...string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: keep\r\nContent-Length: 3\r\n" + strings.Join(append(hdr, ""), "\r\n") + "\r\nfoo"
	}
	tests := []struct {
		name      string
		req       string
		halfClose bool
		code      int
		body      string
	}{
		{"path ..", rawPut("/..", 3, "foo"), false, 400, "invalid locator"},
		{"path /", rawPut("/", 3, "foo"), false, 400, "Bad Request"},
		{"uppercase hash", rawPut("/"+strings.ToUpper(foo), 3, "foo"), false, 400, "invalid locator"},
		{"31 hex digits", rawPut("/"+foo[:31], 3, "foo"), false, 400, "hash has 31 characters, want 32"},
		{"33 hex digits", rawPut("/"+foo+"0", 3, "foo"), false, 400, "hash has 33 characters, want 32"},
		{"bad hint", rawPut("/"+foo+"+3+a", 3, "foo"), false, 400, "invalid locator"},
		{"subdirectory", rawPut("/"+foo[:3]+"/"+foo, 3, "foo"), false, 400, "Bad Request"},
		{"double slash PUT", rawPut("//"+foo, 3, "foo"), false, 400, "Bad Request"},
		{"hash mismatch", rawPut("/"+hashOf([]byte("bar")), 3, "foo"), false, 400, "hash mismatch: body has MD5 " + foo},
		{"size hint mismatch", rawPut("/"+foo+"+4", 3, "foo"), false, 400, "size hint 4 does not match Content-Length 3"},
		{"body shorter than Content-Length", rawPut("/"+foo, 10, "foo"), true, 400, "reading request body: unexpected EOF"},
		{"body longer than Content-Length", rawPut("/"+hashOf([]byte("foofoo")), 3, "foofoo"), false, 400, "hash mismatch"},
		{"Content-Length too large", rawPut("/"+foo, locator.MaxBlockSize+1, ""), false, 413, "Content-Length 67108865: block larger than 67108864 bytes"},
		{"size hint too large", rawPut("/"+foo+"+67108865", 3, "foo"), false, 400, "invalid locator"},
		{"no Authorization", noAuth("PUT", "/"+foo), false, 401, "no token provided"},
		{"Basic auth", noAuth("PUT", "/"+foo, "Authorization: Basic dXNlcjpwYXNz"), false, 401, "malformed"},
		{"Bearer without token", noAuth("PUT", "/"+foo, "Authorization: Bearer"), false, 401, "malformed"},
		{"Bearer two words", noAuth("PUT", "/"+foo, "Authorization: Bearer a b"), false, 401, "malformed"},
		{"POST", noAuth("POST", "/"+foo, "Authorization: Bearer t"), false, 400, "Bad Request"},
		{"DELETE without the system token", noAuth("DELETE", "/"+foo, "Authorization: Bearer t"), false, 403, "forbidden"},
		{"unknown method", noAuth("FROB", "/"+foo, "Authorization: Bearer t"), false, 400, "Bad Request"},
		{"removed status.json", noAuth("GET", "/status.json"), false, 400, ""},
		{"GET bad locator", noAuth("GET", "/"+foo+"+3+"), false, 400, "invalid locator"},
	}
	var want []string // files of the good PUTs so far
	good := func(name string) {
		t.Helper()
		data := []byte("good after " + name)
		ts.put(t, data)
		want = append(want, hashOf(data))
	}
	check := func(name string) {
		t.Helper()
		var got []string
		for _, f := range ts.files(t) {
			got = append(got, f[strings.LastIndexByte(f, '/')+1:])
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: volume holds %v, want only %v", name, got, want)
		}
		good(name)
	}
	for _, tt := range tests {
		code, body := ts.raw(t, tt.req, tt.halfClose)
		if code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("%s: got %d %q, want %d %q", tt.name, code, body, tt.code, tt.body)
		}
		check(tt.name)
	}

	// Client hangs up mid-body.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(rawPut("/"+hashOf(make([]byte, 1000)), 1000, string(make([]byte, 500)), "X-Request-Id: hangup-1")))
	conn.Close()
	ts.waitLog(t, "request_id=hangup-1")
	check("client hang-up")
}

func TestSignatures(t *testing.T) {
	key := []byte("abcdefg")
	signer := locator.Signer{Key: key, TTL: time.Hour}
	ts := start(t, keepstore.Config{SigningKey: key, SigningTTL: time.Hour, RequireSignatures: true})
	signed, _ := ts.put(t, []byte("foo"))
	bare := locator.New([]byte("foo"))
	future := time.Now().Add(time.Hour)
	noSize := locator.Locator{Hash: bare.Hash, Size: -1}
	tests := []struct {
		method, loc, tok string
		code             int
		body             string
	}{
		{"GET", signed, token, 200, "foo"},
		{"HEAD", signed, token, 200, ""},
		{"GET", "/" + signed, token, 200, "foo"},
		{"GET", signed + "+K@zzzzz", token, 200, "foo"},
		{"GET", signed, "", 401, "no token provided in Authorization header"},
		{"HEAD", signed, "", 401, "no token provided in Authorization header"},
		{"GET", signed, "other", 400, "invalid signature"},
		{"GET", signer.Sign(bare, token, time.Now().Add(-time.Minute)).String(), token, 401, "expired signature"},
		{"GET", signer.Sign(bare, "other", future).String(), token, 400, "invalid signature"},
		{"GET", locator.Signer{Key: []byte("wrong"), TTL: time.Hour}.Sign(bare, token, future).String(), token, 400, "invalid signature"},
		{"GET", bare.String(), token, 400, "invalid signature"},
		{"GET", bare.Hash, token, 405, ""},
		{"GET", signer.Sign(noSize, token, future).String(), token, 405, ""},
		{"HEAD", signer.Sign(noSize, token, future).String(), token, 200, ""},
		{"HEAD", bare.Hash, token, 400, ""},
	}
	for _, tt := range tests {
		code, body, h := ts.do(t, tt.method, "/"+tt.loc, tt.tok, nil)
		if tt.method == "HEAD" {
			tt.body = ""
		}
		if code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("%s %s token %q: %d %q, want %d %q", tt.method, tt.loc, tt.tok, code, body, tt.code, tt.body)
		}
		if h.Get("Vary") != "X-Keep-Signature" {
			t.Errorf("%s %s: Vary = %q", tt.method, tt.loc, h.Get("Vary"))
		}
	}
	// Logs carry the locator but no credentials.
	logs := ts.log.String()
	sig := signed[strings.Index(signed, "+A")+2:]
	for _, secret := range []string{token, string(key), sig} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains secret %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "path=/"+bare.String()+" ") {
		t.Errorf("log lacks the redacted path %s:\n%s", bare, logs)
	}
}
