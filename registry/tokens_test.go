package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
)

// A token name is taken once; a revoked token is refused, and revoking
// it again or an unknown name is ErrNoToken.
func TestTokens(t *testing.T) {
	forEachStore(t, func(t *testing.T, dsn func(*testing.T) string) {
		ctx, now := context.Background(), time.Now()
		s, err := Open(ctx, dsn(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		secret, err := s.CreateToken(ctx, "alice", apiauth.ScopeRead, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateToken(ctx, "alice", apiauth.ScopeWrite, now); !errors.Is(err, ErrTokenExists) {
			t.Errorf("second token named alice: %v, want ErrTokenExists", err)
		}
		if _, err := s.CreateToken(ctx, "no spaces please", apiauth.ScopeRead, now); err == nil {
			t.Error("a token name with spaces was taken")
		}
		if tok, err := s.Lookup(ctx, secret); err != nil || tok.Name != "alice" || tok.Scope != apiauth.ScopeRead {
			t.Errorf("Lookup: %+v, %v", tok, err)
		}
		if err := s.RevokeToken(ctx, "alice", now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lookup(ctx, secret); !errors.Is(err, ErrNoToken) {
			t.Errorf("Lookup of a revoked token: %v, want ErrNoToken", err)
		}
		for _, name := range []string{"alice", "bob"} {
			if err := s.RevokeToken(ctx, name, now); !errors.Is(err, ErrNoToken) {
				t.Errorf("RevokeToken(%s): %v, want ErrNoToken", name, err)
			}
		}
		toks, err := s.Tokens(ctx)
		if err != nil || len(toks) != 1 || toks[0].RevokedAt.IsZero() {
			t.Errorf("Tokens: %+v, %v", toks, err)
		}
	})
}
