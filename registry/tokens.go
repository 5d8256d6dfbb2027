package registry

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/protocol"
)

// Token is a named token the cluster accepts. Its secret is shown once,
// when it is created; the registry keeps only its SHA-256.
type Token struct {
	Name      string
	Scope     apiauth.Scope
	CreatedAt time.Time
	// RevokedAt is when the token was revoked, zero while it is valid.
	RevokedAt time.Time
}

// ErrTokenExists is returned when a token of that name exists already.
var ErrTokenExists = errors.New("a token of that name exists")

// ErrNoToken is returned for a token name that is not in the registry.
var ErrNoToken = errors.New("no token of that name")

// tokenNameRE is what a token name may be: short, printable, no spaces,
// so that it can be named on a command line and in logs.
var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// secretLen gives a secret about 258 bits.
const secretLen = 50

// newSecret returns a new token secret: letters and digits, as Arvados
// tokens, so that it passes through headers, URLs and shells.
func newSecret() string { return protocol.RandomBase36(secretLen) }

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateToken adds a token called name with scope and returns its
// secret, which the registry cannot show again.
func (s *Store) CreateToken(ctx context.Context, name string, scope apiauth.Scope, now time.Time) (string, error) {
	if !tokenNameRE.MatchString(name) {
		return "", fmt.Errorf("token name %q: use 1 to 64 letters, digits and . _ @ -, starting with a letter or digit", name)
	}
	if scope == apiauth.ScopeNone || scope.String() == "" {
		return "", fmt.Errorf("token %s: no scope", name)
	}
	secret := newSecret()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tokens (name, secret_sha256, scope, created_at) VALUES (?, ?, ?, ?)`),
		name, hashSecret(secret), scope.String(), now.UnixMicro())
	if isUniqueViolation(err) {
		return "", fmt.Errorf("token %s: %w", name, ErrTokenExists)
	}
	if err != nil {
		return "", fmt.Errorf("adding token %s to the %s: %w", name, s.desc, err)
	}
	return secret, nil
}

// RevokeToken revokes the token called name: from now on it is refused.
func (s *Store) RevokeToken(ctx context.Context, name string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`), now.UnixMicro(), name)
	if err != nil {
		return fmt.Errorf("revoking token %s in the %s: %w", name, s.desc, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %s: %w (or it is revoked already)", name, ErrNoToken)
	}
	return nil
}

// Tokens lists every token, revoked ones too, by name.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, scope, created_at, revoked_at FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("listing tokens in the %s: %w", s.desc, err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("listing tokens in the %s: %w", s.desc, err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tokens in the %s: %w", s.desc, err)
	}
	return out, nil
}

// Lookup returns the valid token whose secret is secret, or ErrNoToken.
func (s *Store) Lookup(ctx context.Context, secret string) (Token, error) {
	row := s.db.QueryRowContext(ctx, s.q(`SELECT name, scope, created_at, revoked_at FROM tokens WHERE secret_sha256 = ? AND revoked_at IS NULL`), hashSecret(secret))
	t, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrNoToken
	}
	if err != nil {
		return Token{}, fmt.Errorf("looking up a token in the %s: %w", s.desc, err)
	}
	return t, nil
}

func scanToken(r interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var scope string
	var created int64
	var revoked sql.NullInt64
	if err := r.Scan(&t.Name, &scope, &created, &revoked); err != nil {
		return Token{}, err
	}
	sc, err := apiauth.ParseScope(scope)
	if err != nil {
		return Token{}, fmt.Errorf("token %s: %w", t.Name, err)
	}
	t.Scope = sc
	t.CreatedAt = time.UnixMicro(created).UTC()
	if revoked.Valid {
		t.RevokedAt = time.UnixMicro(revoked.Int64).UTC()
	}
	return t, nil
}
