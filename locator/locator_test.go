package locator

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	const h = "acbd18db4cc2f85cedef654fccc4a4d8"
	tests := []struct {
		in      string
		size    int64
		hints   []string
		wantErr string
	}{
		{in: h, size: -1},
		{in: h + "+3", size: 3},
		{in: h + "+0", size: 0},
		{in: h + "+67108864", size: MaxBlockSize},
		{in: h + "+3+K@zzzzz+Zfoo", size: 3, hints: []string{"K@zzzzz", "Zfoo"}},
		{in: h + "+K@zzzzz", size: -1, hints: []string{"K@zzzzz"}},
		{in: h + "+3+A" + strings.Repeat("a", 40) + "@7fffffff", size: 3, hints: []string{"A" + strings.Repeat("a", 40) + "@7fffffff"}},
		{in: "", wantErr: "0 characters"},
		{in: strings.ToUpper(h), wantErr: "want 0-9 or a-f"},
		{in: h[:31], wantErr: "31 characters"},
		{in: h + "0", wantErr: "33 characters"},
		{in: h + "+67108865", wantErr: "exceeds the maximum"},
		{in: h + "+99999999999999999999999", wantErr: "exceeds the maximum"},
		{in: h + "+3x", wantErr: "not a decimal"},
		{in: h + "+03", wantErr: "leading zero"},
		{in: h + "+", wantErr: "empty hint"},
		{in: h + "++3", wantErr: "empty hint"},
		{in: h + "+3+", wantErr: "empty hint"},
		{in: h + "+3+4", wantErr: "uppercase"},
		{in: h + "+3+a", wantErr: "uppercase"},
		{in: h + "+3+K@z z", wantErr: "contains"},
		{in: "../" + h[3:], wantErr: "want 0-9"},
	}
	for _, tt := range tests {
		l, err := Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if l.Hash != h || l.Size != tt.size || strings.Join(l.Hints, ",") != strings.Join(tt.hints, ",") {
			t.Errorf("Parse(%q) = %+v", tt.in, l)
		}
		if got := l.String(); got != tt.in {
			t.Errorf("Parse(%q).String() = %q", tt.in, got)
		}
	}
}

func TestNew(t *testing.T) {
	if got := New([]byte("foo")).String(); got != "acbd18db4cc2f85cedef654fccc4a4d8+3" {
		t.Errorf("New(foo) = %s", got)
	}
	if l := New(nil); !l.IsEmptyBlock() || l.String() != EmptyHash+"+0" {
		t.Errorf("New(nil) = %s", l)
	}
}

func TestSignVector(t *testing.T) {
	s := Signer{Key: []byte("abcdefg"), TTL: 1209600 * time.Second}
	l, _ := Parse("acbd18db4cc2f85cedef654fccc4a4d8+3+K@zzzzz")
	signed := s.Sign(l, "xyzzy", time.Unix(0x7fffffff, 0))
	want := "acbd18db4cc2f85cedef654fccc4a4d8+3+K@zzzzz+Add8cc5ff6b29fdb370cbdbee163849568a2765f3@7fffffff"
	if signed.String() != want {
		t.Fatalf("Sign = %s\nwant %s", signed, want)
	}
	// Re-signing replaces the old signature.
	if again := s.Sign(signed, "xyzzy", time.Unix(0x7fffffff, 0)); again.String() != want {
		t.Errorf("re-sign = %s", again)
	}
	now := time.Unix(1_700_000_000, 0)
	if err := s.Verify(signed, "xyzzy", now); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if (Signer{}).Sign(l, "xyzzy", now).String() != l.String() {
		t.Error("Sign without key changed the locator")
	}
}

func TestVerifyErrors(t *testing.T) {
	s := Signer{Key: []byte("abcdefg"), TTL: time.Hour}
	now := time.Unix(1_700_000_000, 0)
	l := New([]byte("foo"))
	good := s.Sign(l, "tok", now.Add(time.Hour))
	tests := []struct {
		name  string
		loc   Locator
		token string
		want  error
	}{
		{"unsigned", l, "tok", ErrNoSignature},
		{"wrong token", good, "other", ErrInvalidSignature},
		{"expired", s.Sign(l, "tok", now.Add(-time.Second)), "tok", ErrExpired},
		{"wrong key", Signer{Key: []byte("x"), TTL: time.Hour}.Sign(l, "tok", now.Add(time.Hour)), "tok", ErrInvalidSignature},
		{"two signatures", Locator{Hash: l.Hash, Size: 3, Hints: append(append([]string{}, good.Hints...), good.Hints...)}, "tok", ErrInvalidSignature},
	}
	for _, tt := range tests {
		if err := s.Verify(tt.loc, tt.token, now); !errors.Is(err, tt.want) {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"acbd18db4cc2f85cedef654fccc4a4d8",
		"acbd18db4cc2f85cedef654fccc4a4d8+3+K@zzzzz",
		"acbd18db4cc2f85cedef654fccc4a4d8+3+Add8cc5ff6b29fdb370cbdbee163849568a2765f3@7fffffff",
		"d41d8cd98f00b204e9800998ecf8427e+0",
		"x+1", "++", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		if got := l.String(); got != s {
			t.Fatalf("Parse(%q).String() = %q", s, got)
		}
		l2, err := Parse(l.String())
		if err != nil || l2.String() != s {
			t.Fatalf("round trip of %q: %v %q", s, err, l2)
		}
	})
}

// FuzzVerify: whatever the locator and token, Verify never panics, a
// signature this Signer made verifies for its token and no other, and a
// locator accepted by Verify carries exactly the signature Sign would give.
func FuzzVerify(f *testing.F) {
	f.Add("acbd18db4cc2f85cedef654fccc4a4d8+3+Add8cc5ff6b29fdb370cbdbee163849568a2765f3@7fffffff", "tok", "other")
	f.Add("acbd18db4cc2f85cedef654fccc4a4d8+3", "", "x")
	f.Add("acbd18db4cc2f85cedef654fccc4a4d8+3+AFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF@ffffffff", "t", "t")
	s := Signer{Key: []byte("fuzz key"), TTL: time.Hour}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, loc, token, other string) {
		l, err := Parse(loc)
		if err != nil {
			return
		}
		if err := s.Verify(l, token, now); err == nil {
			var sig string
			for _, h := range l.Hints {
				if isSignatureHint(h) {
					sig = h
				}
			}
			exp, _ := strconv.ParseInt(sig[42:], 16, 64)
			want := "A" + s.mac(l.Hash, token, exp) + "@" + sig[42:]
			if exp < now.Unix() || !strings.EqualFold(sig, want) {
				t.Fatalf("Verify accepted %q for %q; the signature would be %q", loc, token, want)
			}
		}
		if token == "" {
			return
		}
		signed := s.Sign(l, token, now.Add(time.Minute))
		if err := s.Verify(signed, token, now); err != nil {
			t.Fatalf("own signature on %q refused: %v", signed, err)
		}
		if other != token {
			if err := s.Verify(signed, other, now); err == nil {
				t.Fatalf("signature for %q accepted for %q", token, other)
			}
		}
		if err := s.Verify(signed, token, now.Add(2*time.Minute)); !errors.Is(err, ErrExpired) {
			t.Fatalf("signature past its expiry: %v", err)
		}
	})
}
