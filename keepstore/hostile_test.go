package keepstore_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// The system token of the servers in the hostile table.
const hostileSysToken = "hostilesystoken"

// hostileEnv is what the rows of the hostile table build their requests
// from: a block stored on both servers before the first row.
type hostileEnv struct {
	data   string // the stored block
	hash   string
	loc    string // hash+size
	signed string // loc signed for token by the signing server
	mac    string // the 40 hex digits of signed's signature
	exp    string // its 8 hex digits of expiry
}

// hreq formats a request with the test token (keeptest.RawRequest).
func hreq(method, target string, headers []string, body string) string {
	return keeptest.RawRequest(method, target, token, headers, body)
}

// hput formats a PUT of body with its true Content-Length.
func hput(target, body string, headers ...string) string {
	return hreq("PUT", target, append([]string{fmt.Sprintf("Content-Length: %d", len(body))}, headers...), body)
}

// hget formats a GET with the header lines given.
func hget(target string, headers ...string) string { return hreq("GET", target, headers, "") }

// hchunked encodes body as one chunk and the last chunk.
func hchunked(body string) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body) }

// hostileRow is one hostile request and the answer it must get.
type hostileRow struct {
	name      string
	server    string                   // "signing", "nosys" or "" (see TestHostileRequests)
	req       func(*hostileEnv) string // the raw request
	halfClose bool                     // close the sending side after the request
	code      int
	orCode    int    // another status accepted, if not 0
	body      string // a substring the answer's body must contain
	stores    string // the block the row is meant to store, if any
}

// hostileRows returns the table. Cases already in TestBadRequests,
// TestSignatures, TestRefusedWithoutUpload, TestClassesHeaderBounded,
// TestIndex* and the slow-upload tests are not repeated; these are
// their variants and the classes they lack. Management routes (DELETE,
// TOUCH, /mounts, /pull, /trash, /untrash, /metrics, /_status,
// /_health) have tests of their own.
func hostileRows() []hostileRow {
	type env = hostileEnv
	fixed := func(s string) func(*env) string { return func(*env) string { return s } }
	zeros := strings.Repeat("0", 32)
	return []hostileRow{
		// Path traversal.
		{name: "GET ../../etc/passwd", req: fixed(hget("/../../etc/passwd")), code: 400, body: "Bad Request"},
		{name: "PUT %2e%2e/%2e%2e/etc/passwd", req: fixed(hput("/%2e%2e/%2e%2e/etc/passwd", "root")), code: 400, body: "Bad Request"},
		{name: "GET %2e%2e", req: fixed(hget("/%2e%2e")), code: 400, body: "invalid locator"},
		{name: "PUT ..%2f..%2fHASH", req: func(e *env) string { return hput("/..%2f..%2f"+e.hash, e.data) }, code: 400, body: "Bad Request"},
		{name: "PUT %2fHASH (encoded double slash)", req: func(e *env) string { return hput("/%2f"+e.hash, e.data) }, code: 400, body: "Bad Request"},
		{name: "GET %2f%2fLOC (encoded triple slash)", req: func(e *env) string { return hget("/%2f%2f" + e.loc) }, code: 400, body: "Bad Request"},
		{name: "GET backslash traversal", req: fixed(hget(`/..\..\etc\passwd`)), code: 400},
		{name: "GET backslash before the locator", req: func(e *env) string { return hget(`/\` + e.loc) }, code: 400},
		{name: "GET encoded NUL after the hash", req: func(e *env) string { return hget("/" + e.hash + "%00+" + e.loc[33:]) }, code: 400, body: "invalid locator"},
		{name: "GET raw NUL in the request line", req: func(e *env) string { return hget("/" + e.hash + "\x00") }, code: 400},
		{name: "PUT NUL in a header value", req: func(e *env) string { return hput("/"+e.hash, e.data, "X-Request-Id: a\x00b") }, code: 400},

		// Bad hashes and hints.
		{name: "GET one-character hash", req: fixed(hget("/a")), code: 400, body: "hash has 1 characters, want 32"},
		{name: "GET 64-digit hash", req: fixed(hget("/" + zeros + zeros + "+3")), code: 400, body: "hash has 64 characters, want 32"},
		{name: "GET mixed-case hash", req: func(e *env) string { return hget("/" + upperFirstLetter(e.loc)) }, code: 400, body: "invalid locator"},
		{name: "PUT non-hex hash", req: fixed(hput("/"+strings.Repeat("g", 32), "foo")), code: 400, body: "hash character 1 is 'g'"},
		{name: "GET negative size hint", req: func(e *env) string { return hget("/" + e.hash + "+-3") }, code: 400, body: "does not start with an uppercase letter"},
		{name: "PUT size hint with a leading zero", req: func(e *env) string { return hput("/"+e.loc[:33]+"0"+e.loc[33:], e.data) }, code: 400, body: "leading zero"},
		{name: "GET doubled +", req: func(e *env) string { return hget("/" + e.hash + "++" + e.loc[33:]) }, code: 400, body: "empty hint"},
		{name: "GET hint with a dot", req: func(e *env) string { return hget("/" + e.loc + "+Kzz.zz") }, code: 400, body: "contains '.'"},
		{name: "GET size hint of 20 digits", req: func(e *env) string { return hget("/" + e.hash + "+99999999999999999999") }, code: 400, body: "exceeds the maximum block size"},
		{name: "GET 100000 hints", req: func(e *env) string { return hget("/" + e.loc + strings.Repeat("+Kzzzzz", 100000)) }, code: 400, body: "longer than the 2048 allowed"},
		{name: "PUT 100000 hints", req: func(e *env) string { return hput("/"+e.loc+strings.Repeat("+Kzzzzz", 100000), e.data) }, code: 400, body: "longer than the 2048 allowed"},
		{name: "GET locator of 3000 bytes", req: func(e *env) string { return hget("/" + e.loc + "+K" + strings.Repeat("z", 3000-len(e.loc)-2)) }, code: 400, body: "3000 bytes, longer than the 2048 allowed"},

		// Length lies.
		{name: "Content-Length shorter than the body: the rest is a next request", req: fixed(hreq("PUT", "/"+hashOf([]byte("short")), []string{"Content-Length: 5"}, "shortGARBAGE")), code: 200, stores: "short"},
		{name: "Content-Length longer than the body, connection left open", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{fmt.Sprintf("Content-Length: %d", len(e.data)+10)}, e.data)
		}, code: 408, body: "upload too slow"},
		{name: "Content-Length negative", req: func(e *env) string { return hreq("PUT", "/"+e.hash, []string{"Content-Length: -3"}, e.data) }, code: 400},
		{name: "Content-Length not a number", req: func(e *env) string { return hreq("PUT", "/"+e.hash, []string{"Content-Length: three"}, e.data) }, code: 400},
		{name: "Content-Length with a plus sign", req: func(e *env) string { return hreq("PUT", "/"+e.hash, []string{"Content-Length: +3"}, e.data) }, code: 400},
		{name: "two different Content-Length headers", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{fmt.Sprintf("Content-Length: %d", len(e.data)), fmt.Sprintf("Content-Length: %d", len(e.data)+1)}, e.data)
		}, code: 400},
		{name: "two equal Content-Length headers", req: fixed(hreq("PUT", "/"+hashOf([]byte("twice")), []string{"Content-Length: 5", "Content-Length: 5"}, "twice")), code: 200, stores: "twice"},
		{name: "Content-Length of 1 TiB", req: func(e *env) string { return hreq("PUT", "/"+e.hash, []string{"Content-Length: 1099511627776"}, e.data) }, code: 413, body: "block larger than 67108864 bytes"},
		{name: "Content-Length over 64 bits", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Content-Length: 99999999999999999999999"}, e.data)
		}, code: 400},
		{name: "empty body under a non-empty hash", req: func(e *env) string { return hput("/"+e.hash, "") }, code: 400, body: "hash mismatch"},

		// Chunked bodies.
		{name: "chunked", req: fixed(hreq("PUT", "/"+hashOf([]byte("chunked body")), []string{"Transfer-Encoding: chunked"}, hchunked("chunked body"))), code: 200, stores: "chunked body"},
		{name: "chunked body over 64 MiB", req: func(*env) string {
			return hreq("PUT", "/"+zeros, []string{"Transfer-Encoding: chunked"}, hchunked(strings.Repeat("x", locator.MaxBlockSize+1)))
		}, code: 413, body: "block larger than 67108864 bytes"},
		{name: "chunk size not hex", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked"}, "zz\r\n"+e.data+"\r\n0\r\n\r\n")
		}, code: 400, body: "reading request body"},
		{name: "chunk size over 64 bits", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked"}, "fffffffffffffffffffff\r\n"+e.data+"\r\n0\r\n\r\n")
		}, code: 400, body: "reading request body"},
		{name: "chunk size negative", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked"}, "-5\r\n"+e.data+"\r\n0\r\n\r\n")
		}, code: 400, body: "reading request body"},
		{name: "chunk longer than its data", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked"}, fmt.Sprintf("%x\r\n%s", len(e.data)+100, e.data))
		}, halfClose: true, code: 400, body: "reading request body"},
		{name: "chunk without its CRLF", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked"}, fmt.Sprintf("%x\r\n%sXX0\r\n\r\n", len(e.data), e.data))
		}, code: 400, body: "reading request body"},
		{name: "chunked hash mismatch", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked"}, hchunked("not the block"))
		}, code: 400, body: "hash mismatch"},
		{name: "hash mismatch over a stored block, same length", req: func(e *env) string { return hput("/"+e.hash, strings.Repeat("X", len(e.data))) }, code: 400, body: "hash mismatch"},

		// Transfer-Encoding tricks.
		{name: "Transfer-Encoding chunked, identity", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked, identity"}, hchunked(e.data))
		}, code: 501},
		{name: "Transfer-Encoding identity", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: identity", fmt.Sprintf("Content-Length: %d", len(e.data))}, e.data)
		}, code: 501},
		{name: "Transfer-Encoding gzip, chunked", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: gzip, chunked"}, hchunked(e.data))
		}, code: 501},
		{name: "two Transfer-Encoding headers", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked", "Transfer-Encoding: chunked"}, hchunked(e.data))
		}, code: 501},
		// RFC 9112 section 6.3 lets a server reject this or follow the
		// Transfer-Encoding alone; net/http does the latter, and the body
		// is still checked against its hash, so nothing wrong is stored.
		{name: "Transfer-Encoding and Content-Length", req: func(e *env) string {
			return hreq("PUT", "/"+e.hash, []string{"Transfer-Encoding: chunked", "Content-Length: 3"}, hchunked(e.data))
		}, code: 200},

		// Header bombs.
		// net/http's limit (http.DefaultMaxHeaderBytes, which keep server
		// keeps) is 1 MiB of headers plus 4 KiB of slack.
		{name: "header of exactly 1 MiB", req: func(e *env) string { return hget("/"+e.loc, "X-Bomb: "+strings.Repeat("b", 1<<20)) }, code: 200},
		{name: "header of 1 MiB and 8 KiB", req: func(e *env) string { return hget("/"+e.loc, "X-Bomb: "+strings.Repeat("b", 1<<20+8<<10)) }, code: 431},
		{name: "10000 headers on a GET", req: func(e *env) string { return hget("/"+e.loc, hostileHeaders("X-Junk-%d: v", 10000)...) }, code: 200},
		{name: "10000 storage-classes headers", req: func(e *env) string {
			return hput("/"+e.hash, e.data, hostileHeaders("X-Keep-Storage-Classes: c%d", 10000)...)
		}, code: 400, body: "more than 64 classes"},
		{name: "storage classes of 900 KiB of commas", req: func(e *env) string {
			return hput("/"+e.hash, e.data, "X-Keep-Storage-Classes: "+strings.Repeat(" ,", 450<<10))
		}, code: 200},
		{name: "X-Request-Id of 900 KiB", req: func(e *env) string { return hget("/"+e.loc, "X-Request-Id: "+strings.Repeat("r", 900<<10)) }, code: 200},
		{name: "X-Keep-Desired-Replicas of 900 KiB", req: func(e *env) string {
			return hput("/"+e.hash, e.data, "X-Keep-Desired-Replicas: "+strings.Repeat("9", 900<<10))
		}, code: 200},
		{name: "header line without a colon", req: func(e *env) string { return hget("/"+e.loc, "NoColonHere") }, code: 400},
		{name: "header name with a space", req: func(e *env) string { return hget("/"+e.loc, "X Bad: 1") }, code: 400},
		// RFC 9112 section 5.2: reject, or replace the fold with spaces,
		// which net/http does.
		{name: "obsolete line folding", req: func(e *env) string { return hget("/"+e.loc, "X-Folded: a", " b") }, code: 200},
		{name: "unknown Expect", req: func(e *env) string { return hput("/"+e.hash, e.data, "Expect: bogus") }, code: 417},

		// Tokens.
		{name: "three Authorization headers", req: func(e *env) string {
			return hput("/"+e.hash, e.data, "Authorization: Bearer "+token, "Authorization: Bearer "+token, "Authorization: Bearer x")
		}, code: 401, body: "3 Authorization headers, want one"},
		{name: "two Authorization headers on a signed GET", server: "signing", req: func(e *env) string {
			return hget("/"+e.signed, "Authorization: Bearer "+token, "Authorization: Bearer "+token)
		}, code: 401, body: "2 Authorization headers, want one"},
		{name: "Authorization over 8 KiB", req: func(e *env) string {
			return hput("/"+e.hash, e.data, "Authorization: Bearer "+strings.Repeat("t", 8<<10))
		}, code: 401, body: "longer than the 8192 allowed"},
		{name: "Bearer and spaces on a signed GET", server: "signing", req: func(e *env) string { return hget("/"+e.signed, "Authorization: Bearer    ") }, code: 401, body: "malformed"},
		{name: "Basic on a signed GET", server: "signing", req: func(e *env) string { return hget("/"+e.signed, "Authorization: Basic dXNlcnRva2VuOg==") }, code: 401, body: "malformed"},
		{name: "OAuth2 scheme", req: fixed(hput("/"+hashOf([]byte("oauth2")), "oauth2", "Authorization: OAuth2 "+token)), code: 200, stores: "oauth2"},
		{name: "lowercase bearer on a signed GET", server: "signing", req: func(e *env) string { return hget("/"+e.signed, "Authorization: bearer "+token) }, code: 200},
		{name: "Digest scheme", req: func(e *env) string {
			return hput("/"+e.hash, e.data, `Authorization: Digest username="u", response="x"`)
		}, code: 401, body: "malformed"},

		// Signatures.
		{name: "forged signature (one digit changed)", server: "signing", req: func(e *env) string {
			return hget("/" + e.loc + "+A" + flipHex(e.mac) + "@" + e.exp)
		}, code: 400, body: "invalid signature"},
		{name: "expiry moved to 2106", server: "signing", req: func(e *env) string { return hget("/" + e.loc + "+A" + e.mac + "@ffffffff") }, code: 400, body: "invalid signature"},
		{name: "expiry moved to 1970", server: "signing", req: func(e *env) string { return hget("/" + e.loc + "+A" + e.mac + "@00000000") }, code: 401, body: "expired signature"},
		{name: "signature for the token in upper case", server: "signing", req: func(e *env) string {
			return hget("/"+e.signed, "Authorization: Bearer "+strings.ToUpper(token))
		}, code: 400, body: "invalid signature"},
		{name: "+A hint too short", server: "signing", req: func(e *env) string { return hget("/" + e.loc + "+Azz@zz") }, code: 400, body: "invalid signature"},
		{name: "+A hint without expiry", server: "signing", req: func(e *env) string { return hget("/" + e.loc + "+A" + e.mac) }, code: 400, body: "invalid signature"},
		{name: "+A hint not hex", server: "signing", req: func(e *env) string { return hget("/" + e.loc + "+A" + strings.Repeat("z", 40) + "@" + e.exp) }, code: 400, body: "invalid signature"},
		{name: "two signatures, one forged", server: "signing", req: func(e *env) string {
			return hget("/" + e.signed + "+A" + flipHex(e.mac) + "@" + e.exp)
		}, code: 400, body: "invalid signature"},
		{name: "signature on a PUT", server: "signing", req: func(e *env) string { return hput("/"+e.signed, e.data) }, code: 200},
		{name: "forged signature on a PUT", req: func(e *env) string { return hput("/"+e.loc+"+A"+strings.Repeat("0", 40)+"@"+e.exp, e.data) }, code: 200},

		// Methods.
		{name: "POST /index", req: fixed(hreq("POST", "/index", []string{"Authorization: Bearer " + hostileSysToken, "Content-Length: 0"}, "")), code: 400, body: "Bad Request"},
		{name: "PATCH", req: func(e *env) string { return "PATCH" + hput("/"+e.hash, e.data)[len("PUT"):] }, code: 400},
		{name: "CONNECT", req: fixed("CONNECT keep:443 HTTP/1.1\r\nHost: keep:443\r\n\r\n"), code: 400, body: "Bad Request"},
		{name: "TRACE", req: func(e *env) string { return hreq("TRACE", "/"+e.loc, nil, "") }, code: 400, body: "Bad Request"},
		{name: "lowercase get", req: func(e *env) string { return hreq("get", "/"+e.loc, nil, "") }, code: 400, body: "Bad Request"},
		{name: "method of 1000 letters", req: func(e *env) string { return hreq(strings.Repeat("G", 1000), "/"+e.loc, nil, "") }, code: 400, body: "Bad Request"},
		{name: "method with a bracket", req: func(e *env) string { return hreq("GE[T", "/"+e.loc, nil, "") }, code: 400},

		// Protocol versions and request targets.
		{name: "HTTP/1.0 without Host", req: func(e *env) string { return "GET /" + e.loc + " HTTP/1.0\r\n\r\n" }, code: 200},
		{name: "HTTP/1.1 without Host", req: func(e *env) string { return "GET /" + e.loc + " HTTP/1.1\r\n\r\n" }, code: 400, body: "missing required Host header"},
		{name: "two Host headers", req: func(e *env) string { return hget("/"+e.loc, "Host: other") }, code: 400},
		{name: "HTTP/2.0 on a text connection", req: func(e *env) string { return "GET /" + e.loc + " HTTP/2.0\r\nHost: keep\r\n\r\n" }, code: 505},
		// Without HTTP/2 configured, net/http hands the preface to the
		// handler as a request for "*".
		{name: "HTTP/2 connection preface", req: fixed("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), code: 400, body: "Bad Request"},
		{name: "path of 2 MiB", req: func(e *env) string { return hget("/" + e.loc + strings.Repeat("+Kzzzzz", 2<<20/7)) }, code: 431},
		{name: "no protocol version", req: func(e *env) string { return "GET /" + e.loc + "\r\nHost: keep\r\n\r\n" }, code: 400},
		{name: "absolute-form GET", req: func(e *env) string { return hget("http://keep/" + e.loc) }, code: 200},
		{name: "absolute-form GET naming another host", req: func(e *env) string { return hget("http://elsewhere.example:9/" + e.loc) }, code: 200},
		{name: "absolute-form PUT with traversal", req: func(e *env) string { return hput("http://keep/../"+e.hash, e.data) }, code: 400, body: "Bad Request"},
		{name: "absolute-form without a path", req: fixed(hget("http://keep")), code: 400, body: "Bad Request"},
		{name: "asterisk-form GET", req: fixed(hget("*")), code: 400},
		{name: "GET ///LOC", req: func(e *env) string { return hget("///" + e.loc) }, code: 400, body: "Bad Request"},
		{name: "GET //", req: fixed(hget("//")), code: 400, body: "Bad Request"},
		{name: "GET LOC with a fragment", req: func(e *env) string { return hget("/" + e.loc + "#frag") }, code: 400},

		// Query strings on block paths.
		{name: "GET with a traversal query", req: func(e *env) string { return hget("/" + e.loc + "?x=/../../etc/passwd") }, code: 200},
		{name: "GET with a bad escape in the query", req: func(e *env) string { return hget("/" + e.loc + "?%zz") }, code: 200},
		{name: "PUT with a query string", req: func(e *env) string { return hput("/"+e.hash+"?prefix=zzz&replicas=9", e.data) }, code: 200},
		{name: "GET signed locator with a query", server: "signing", req: func(e *env) string { return hget("/" + e.signed + "?api_token=x") }, code: 200},

		// Index abuse.
		{name: "index of a non-hex prefix", req: fixed(hget("/index/ghij", "Authorization: Bearer "+hostileSysToken)), code: 400, body: "invalid index prefix"},
		{name: "index of a 10000-character prefix", req: fixed(hget("/index/"+strings.Repeat("a", 10000), "Authorization: Bearer "+hostileSysToken)), code: 400, body: "invalid index prefix"},
		{name: "index of a non-hex query prefix", req: fixed(hget("/index?prefix=ZZ", "Authorization: Bearer "+hostileSysToken)), code: 400, body: "invalid index prefix"},
		{name: "index of %2e%2e", req: fixed(hget("/index/%2e%2e", "Authorization: Bearer "+hostileSysToken)), code: 400, body: "invalid index prefix"},
		{name: "index of a prefix with a slash", req: fixed(hget("/index//", "Authorization: Bearer "+hostileSysToken)), code: 400, body: "invalid index prefix"},
		{name: "index with no token", req: fixed(hget("/index/abc", "Authorization:")), code: 401, body: "no token provided"},
		{name: "index with the token in the query", req: fixed(hget("/index?api_token="+hostileSysToken, "Authorization:")), code: 401, body: "no token provided"},
		{name: "index with a user token", req: fixed(hget("/index")), code: 403, body: "forbidden"},
		{name: "index with the system token in upper case", req: fixed(hget("/index", "Authorization: Bearer "+strings.ToUpper(hostileSysToken))), code: 403, body: "forbidden"},
		// A client that closes its sending side after a complete request
		// (a TCP half-close, as "nc -N" does) can still read the answer,
		// but net/http takes the end of input for the client gone and
		// cancels the request's context.
		//
		// The listing once stopped on the cancelled context and was
		// answered 500 "error listing volume".
		{name: "index, sending side closed after the request", req: fixed(hget("/index", "Authorization: Bearer "+hostileSysToken)), halfClose: true, code: 200, orCode: 499},
		{name: "GET, sending side closed after the request", req: func(e *env) string { return hget("/" + e.loc) }, halfClose: true, code: 200},
		{name: "HEAD, sending side closed after the request", req: func(e *env) string { return hreq("HEAD", "/"+e.loc, nil, "") }, halfClose: true, code: 200},
		// A complete, verified body is stored: it was once thrown away
		// with 503 "volume unavailable" when the context was cancelled
		// after the body had arrived (4 runs in 20).
		{name: "PUT, sending side closed after the body", req: fixed(hput("/"+hashOf([]byte("half-closed")), "half-closed")), halfClose: true, code: 200, stores: "half-closed"},
		{name: "PUT of a stored block, sending side closed after the body", req: func(e *env) string { return hput("/"+e.hash, e.data) }, halfClose: true, code: 200},
		{name: "index on a server with no system token", server: "nosys", req: fixed(hget("/index", "Authorization: Bearer "+hostileSysToken)), code: 403, body: "no system token configured"},
		{name: "index with two tokens", req: fixed(hget("/index", "Authorization: Bearer "+hostileSysToken, "Authorization: Bearer "+hostileSysToken)), code: 401, body: "2 Authorization headers"},
	}
}

// hostileHeaders returns n header lines formatted from format and 0..n-1.
func hostileHeaders(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}

// upperFirstLetter returns s with its first letter in upper case.
func upperFirstLetter(s string) string {
	i := strings.IndexAny(s, "abcdef")
	return s[:i] + strings.ToUpper(s[i:i+1]) + s[i+1:]
}

// flipHex changes the first hex digit of s.
func flipHex(s string) string {
	c := byte('0')
	if s[0] == '0' {
		c = '1'
	}
	return string(c) + s[1:]
}

// TestHostileRequests sends each hostile request of the table over a
// new TCP connection and checks its status and message, that the answer
// does not echo the request, that nothing was stored but the blocks a
// row means to store, and that a normal GET of the block stored first
// still succeeds. Rows go to a server with a system token ("" in the
// row), one that also requires signatures ("signing"), or one with no
// system token ("nosys").
func TestHostileRequests(t *testing.T) {
	key := []byte("hostile signing key")
	// A short grace, so that the body left hanging is cut within a
	// second; loopback bodies are far above the minimum rate.
	const grace = 500 * time.Millisecond
	plain := start(t, keepstore.Config{SystemToken: hostileSysToken, UploadGrace: grace})
	signing := start(t, keepstore.Config{SystemToken: hostileSysToken, UploadGrace: grace,
		SigningKey: key, SigningTTL: time.Hour, RequireSignatures: true})
	nosys := start(t, keepstore.Config{UploadGrace: grace})

	data := "a block stored before the hostile requests"
	plain.put(t, []byte(data))
	nosys.put(t, []byte(data))
	signed, _ := signing.put(t, []byte(data))
	sig := signed[strings.Index(signed, "+A")+2:]
	mac, exp, _ := strings.Cut(sig, "@")
	e := &hostileEnv{data: data, hash: hashOf([]byte(data)), loc: locator.New([]byte(data)).String(), signed: signed, mac: mac, exp: exp}

	rows := hostileRows()
	if len(rows) < 45 {
		t.Fatalf("%d rows, want at least 45", len(rows))
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			ts, good := plain, "/"+e.loc
			switch tt.server {
			case "signing":
				ts, good = signing, "/"+e.signed
			case "nosys":
				ts = nosys
			}
			before := ts.files(t)
			resp, body := keeptest.RawExchange(t, ts.Listener.Addr().String(), tt.req(e), tt.halfClose)
			t.Logf("answer: %d %.200q", resp.StatusCode, body)
			if (resp.StatusCode != tt.code && (tt.orCode == 0 || resp.StatusCode != tt.orCode)) || !strings.Contains(body, tt.body) {
				want := fmt.Sprint(tt.code)
				if tt.orCode != 0 {
					want += fmt.Sprintf(" or %d", tt.orCode)
				}
				t.Errorf("got %d %.300q, want %s %q", resp.StatusCode, body, want, tt.body)
			}
			if n := hostileHeaderBytes(resp.Header); len(body) > 4096 || n > 4096 {
				t.Errorf("answer of %d header and %d body bytes echoes the request", n, len(body))
			}
			if line := firstLine(tt.req(e)); resp.StatusCode == 200 && strings.HasPrefix(line, "GET") && !strings.Contains(line, "/index") && body != data {
				t.Errorf("GET answered 200 with %.100q, want the stored block", body)
			}

			want := before
			if tt.stores != "" {
				want = append(slices.Clone(before), hostileBlockFile(tt.stores))
			}
			hostileWaitFiles(t, ts, want)

			resp, body = keeptest.RawExchange(t, ts.Listener.Addr().String(), hget(good), false)
			if resp.StatusCode != 200 || body != data {
				t.Errorf("normal GET after the row: %d %.100q", resp.StatusCode, body)
			}
		})
	}
}

// hostileBlockFile is the path, relative to a Directory's root, of data's block.
func hostileBlockFile(data string) string {
	h := hashOf([]byte(data))
	return h[:3] + "/" + h
}

// hostileWaitFiles checks that ts's volumes hold exactly the files want. A
// handler may still be removing a temporary file just after its answer
// is sent, so the check is retried for a few seconds before it fails.
func hostileWaitFiles(t *testing.T, ts *testServer, want []string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := slices.Sorted(slices.Values(ts.files(t)))
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("volume holds %v, want %v", got, want)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hostileHeaderBytes is the size of h's names and values.
func hostileHeaderBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return n
}
