package locator

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signature verification errors. Servers map ErrExpired to 401 and the
// others to 400 (older keepstores answered 403).
var (
	ErrNoSignature      = errors.New("locator has no permission signature")
	ErrExpired          = errors.New("expired signature")
	ErrInvalidSignature = errors.New("invalid signature")
)

// Signer signs and verifies +A permission hints, byte-compatible with
// Arvados: hex(HMAC-SHA1(key, hash@token@expiry@ttl)).
type Signer struct {
	// Key is the blob signing key shared by the API server and keepstores.
	Key []byte
	// TTL is the signature lifetime; it is also part of the signed message.
	TTL time.Duration
}

func (s Signer) mac(hash, token string, expiry int64) string {
	m := hmac.New(sha1.New, s.Key)
	fmt.Fprintf(m, "%s@%s@%08x@%x", hash, token, expiry, int64(s.TTL/time.Second))
	return hex.EncodeToString(m.Sum(nil))
}

// Sign returns l with any old +A hints removed and a new one, valid for
// token until expiry, appended after the other hints. With no key or no
// token, l is returned unchanged.
func (s Signer) Sign(l Locator, token string, expiry time.Time) Locator {
	if len(s.Key) == 0 || token == "" {
		return l
	}
	out := Locator{Hash: l.Hash, Size: l.Size}
	for _, h := range l.Hints {
		if !isSignatureHint(h) {
			out.Hints = append(out.Hints, h)
		}
	}
	exp := expiry.Unix()
	out.Hints = append(out.Hints, "A"+s.mac(l.Hash, token, exp)+"@"+fmt.Sprintf("%08x", exp))
	return out
}

// Verify checks that l carries exactly one valid, unexpired +A signature
// for token at time now.
func (s Signer) Verify(l Locator, token string, now time.Time) error {
	var sig string
	for _, h := range l.Hints {
		if isSignatureHint(h) {
			if sig != "" {
				return fmt.Errorf("%w: more than one signature hint", ErrInvalidSignature)
			}
			sig = h
		}
	}
	if sig == "" {
		return ErrNoSignature
	}
	mac, expHex, _ := strings.Cut(sig[1:], "@")
	exp, err := strconv.ParseInt(expHex, 16, 64)
	if err != nil {
		return fmt.Errorf("%w: bad expiry %q", ErrInvalidSignature, expHex)
	}
	if exp < now.Unix() {
		return ErrExpired
	}
	if !hmac.Equal([]byte(strings.ToLower(mac)), []byte(s.mac(l.Hash, token, exp))) {
		return ErrInvalidSignature
	}
	return nil
}

// isSignatureHint reports whether h has the form A<40 hex>@<8 hex>.
func isSignatureHint(h string) bool {
	if len(h) != 1+40+1+8 || h[0] != 'A' || h[41] != '@' {
		return false
	}
	return isHex(h[1:41]) && isHex(h[42:])
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// Unsigned returns l without its +A permission hints, other hints kept:
// the form in which a registry stores a manifest's locators.
func (l Locator) Unsigned() Locator {
	out := Locator{Hash: l.Hash, Size: l.Size}
	for _, h := range l.Hints {
		if !isSignatureHint(h) {
			out.Hints = append(out.Hints, h)
		}
	}
	return out
}
