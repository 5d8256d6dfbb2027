package keepstore_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

// TestLogsHaveNoSecrets sends requests carrying tokens (good, wrong,
// malformed, system) and signed locators (valid, expired, for another
// token, on a corrupt block) and checks that every request is logged with
// its request ID, and that no token, signing key or signature appears in
// the log.
func TestLogsHaveNoSecrets(t *testing.T) {
	const (
		key      = "signing-key-do-not-log"
		sysToken = "system-token-do-not-log"
		other    = "other-token-do-not-log"
	)
	signer := locator.Signer{Key: []byte(key), TTL: time.Hour}
	ts := start(t, keepstore.Config{SigningKey: signer.Key, SigningTTL: signer.TTL, RequireSignatures: true, SystemToken: sysToken})
	foo := []byte("foo")
	signed, _ := ts.put(t, foo, "X-Request-Id", "put-1")
	bare := locator.New(foo)
	expired := signer.Sign(bare, token, time.Now().Add(-time.Minute)).String()
	forOther := signer.Sign(bare, other, time.Now().Add(time.Hour)).String()
	corruptData := []byte("corrupt")
	corruptLoc := signer.Sign(locator.New(corruptData), token, time.Now().Add(time.Hour)).String()
	corrupt(t, ts.dirs[0], corruptData, []byte("c0rrupt"))

	reqs := []struct {
		method, path string
		hdr          []string
		body         []byte
		code         int
	}{
		{"GET", "/" + signed, []string{"Authorization", "Bearer " + token}, nil, 200},
		{"HEAD", "/" + signed, []string{"Authorization", "OAuth2 " + token}, nil, 200},
		{"GET", "//" + signed + "?api_token=" + token, []string{"Authorization", "Bearer " + token}, nil, 200},
		{"GET", "/" + signed, []string{"Authorization", "Bearer " + other}, nil, 400},
		{"GET", "/" + expired, []string{"Authorization", "Bearer " + token}, nil, 401},
		{"GET", "/" + forOther, []string{"Authorization", "Bearer " + token}, nil, 400},
		{"GET", "/" + signed, []string{"Authorization", "Bearer " + token + " " + other}, nil, 401},
		{"GET", "/" + signed, []string{"Authorization", "Basic " + token}, nil, 401},
		{"HEAD", "/" + corruptLoc, []string{"Authorization", "Bearer " + token}, nil, 502},
		{"PUT", "/" + signed, []string{"Authorization", "Bearer " + token}, foo, 200},
		{"PUT", "/" + signed, []string{"Authorization", "Bearer " + token}, []byte("bar"), 400},
		{"PUT", "/" + bare.Hash + "+3+A" + strings.Repeat("g", 40) + "@1", []string{"Authorization", "Bearer " + token}, foo, 200},
		{"GET", "/index", []string{"Authorization", "Bearer " + sysToken}, nil, 200},
		{"GET", "/index", []string{"Authorization", "Bearer " + other}, nil, 403},
	}
	for i, r := range reqs {
		id := fmt.Sprint("secret-test-", i)
		code, body, _ := ts.do(t, r.method, r.path, "", r.body, append(r.hdr, "X-Request-Id", id)...)
		if code != r.code {
			t.Errorf("%s %s: %d %q, want %d", r.method, r.path, code, body, r.code)
		}
		ts.waitLog(t, "request_id="+id+" ")
	}

	logs := ts.log.String()
	secrets := []string{token, other, sysToken, key}
	for _, l := range []string{signed, expired, forOther, corruptLoc} {
		a := l[strings.Index(l, "+A")+2:]
		secrets = append(secrets, a[:strings.IndexByte(a, '@')])
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains secret %q:\n%s", s, logs)
		}
	}
	if !strings.Contains(logs, "request_id=put-1 ") || !strings.Contains(logs, "stored block is corrupt") {
		t.Errorf("log lacks the PUT or the corrupt-block report:\n%s", logs)
	}
}
