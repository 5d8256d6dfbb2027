// Package apiauth asks a collection registry (or an Arvados API server)
// what a token may do, for the block servers and the proxy, which accept
// exactly the tokens the registry knows.
package apiauth

import "fmt"

// Scope is what a token may do. Each scope allows everything the ones
// before it allow.
type Scope int

const (
	// ScopeNone allows nothing: the token is unknown or revoked.
	ScopeNone Scope = iota
	// ScopeRead allows reading blocks and collections.
	ScopeRead
	// ScopeWrite allows writing blocks and creating, updating and
	// trashing collections too.
	ScopeWrite
	// ScopeAdmin allows managing the registry too.
	ScopeAdmin
)

// ScopeField is the field of the registry's users/current answer that
// holds the token's scope by name. An Arvados API server's answer has
// none; its tokens may do everything a user may, so a token it accepts
// counts as ScopeWrite, or ScopeAdmin for an admin user.
const ScopeField = "keep_scope"

var scopeNames = [...]string{ScopeNone: "none", ScopeRead: "read", ScopeWrite: "write", ScopeAdmin: "admin"}

// String returns the scope's name: none, read, write or admin.
func (s Scope) String() string {
	if s < 0 || int(s) >= len(scopeNames) {
		return fmt.Sprintf("Scope(%d)", int(s))
	}
	return scopeNames[s]
}

// ParseScope returns the scope named read, write or admin.
func ParseScope(name string) (Scope, error) {
	for s, n := range scopeNames {
		if n == name && Scope(s) != ScopeNone {
			return Scope(s), nil
		}
	}
	return ScopeNone, fmt.Errorf("unknown scope %q (want read, write or admin)", name)
}

// Allows reports whether a token of scope s may do what needs scope need.
func (s Scope) Allows(need Scope) bool { return need != ScopeNone && s >= need }
