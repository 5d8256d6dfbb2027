package keepclient

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"testing"
)

func TestSaltToken(t *testing.T) {
	const secret = "3kg6k6lzmp9kj5cpkcoxie963cmvjahbt2fod9zru30k1jqdmi"
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte("xxxxx"))
	salted := "v2/zzzzz-gj3su-077z32aux8dg2s1/" + hex.EncodeToString(m.Sum(nil))
	tests := []struct {
		token, cluster, want string
		err                  error
	}{
		{"v2/zzzzz-gj3su-077z32aux8dg2s1/" + secret, "xxxxx", salted, nil},
		// Issued by the remote cluster itself: sent as it is.
		{"v2/xxxxx-gj3su-077z32aux8dg2s1/" + secret, "xxxxx", "v2/xxxxx-gj3su-077z32aux8dg2s1/" + secret, nil},
		// Already salted for some cluster: useless elsewhere.
		{salted, "yyyyy", "", errSalted},
		{secret, "xxxxx", "", errTokenFormat}, // a v1 token
		{"v2/zzzzz-gj3su-077z32aux8dg2s1", "xxxxx", "", errTokenFormat},
		{"v2//" + secret, "xxxxx", "", errTokenFormat},
		{"v2/a/b/c", "xxxxx", "", errTokenFormat},
	}
	for _, tt := range tests {
		got, err := saltToken(tt.token, tt.cluster)
		if got != tt.want || err != tt.err {
			t.Errorf("saltToken(%q, %q) = %q, %v; want %q, %v", tt.token, tt.cluster, got, err, tt.want, tt.err)
		}
	}
}
