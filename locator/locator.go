// Package locator parses, formats, signs and verifies Keep block locators.
//
// A locator names a block by the MD5 of its content, optionally followed by
// the block size and hints, all joined by '+':
//
//	acbd18db4cc2f85cedef654fccc4a4d8+3+A89118b...@7fffffff+K@zzzzz
//
// The package does no I/O.
package locator

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxBlockSize is the largest block Keep stores: 64 MiB.
const MaxBlockSize = 64 << 20

// EmptyHash is the MD5 of the empty block.
const EmptyHash = "d41d8cd98f00b204e9800998ecf8427e"

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("invalid locator")

// Locator is a parsed block locator.
type Locator struct {
	// Hash is the block's MD5 as 32 lowercase hex digits.
	Hash string
	// Size is the block size in bytes, or -1 when the locator has none.
	Size int64
	// Hints are the hints after the size, in order, without the leading '+'.
	Hints []string
}

// New returns the locator hash+size for data.
func New(data []byte) Locator {
	sum := md5.Sum(data)
	return Locator{Hash: hex.EncodeToString(sum[:]), Size: int64(len(data))}
}

// Parse parses s strictly: a 32-digit lowercase hex hash, an optional
// size from 0 to MaxBlockSize, then hints of the form [A-Z][A-Za-z0-9@_-]*.
// Errors wrap ErrSyntax and say which part is wrong.
func Parse(s string) (Locator, error) {
	hash, rest, ok := strings.Cut(s, "+")
	if err := checkHash(hash); err != nil {
		return Locator{}, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
	}
	l := Locator{Hash: hash, Size: -1}
	if !ok {
		return l, nil
	}
	// Without hints (the common case), nothing is allocated.
	if first, more, hasMore := strings.Cut(rest, "+"); first != "" && isDigit(first[0]) {
		n, err := parseSize(first)
		if err != nil {
			return Locator{}, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
		}
		l.Size = n
		if !hasMore {
			return l, nil
		}
		rest = more
	}
	hints := strings.Split(rest, "+")
	for _, h := range hints {
		if err := checkHint(h); err != nil {
			return Locator{}, fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
		}
	}
	l.Hints = hints
	return l, nil
}

// ParseHash reports whether s is a bare 32-digit lowercase hex hash and
// returns an error naming the problem when it is not.
func ParseHash(s string) error {
	if err := checkHash(s); err != nil {
		return fmt.Errorf("%w %q: %v", ErrSyntax, s, err)
	}
	return nil
}

func checkHash(h string) error {
	if len(h) != 32 {
		return fmt.Errorf("hash has %d characters, want 32", len(h))
	}
	// Without a branch per character: random hex digits would
	// mispredict half of them.
	var bad byte
	for i := 0; i < len(h); i++ {
		bad |= notHex[h[i]]
	}
	if bad == 0 {
		return nil
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; notHex[c] != 0 {
			return fmt.Errorf("hash character %d is %q, want 0-9 or a-f", i+1, c)
		}
	}
	return nil
}

// notHex is 1 for every byte but '0'-'9' and 'a'-'f'.
var notHex = func() (t [256]byte) {
	for i := range t {
		if !isDigit(byte(i)) && (i < 'a' || i > 'f') {
			t[i] = 1
		}
	}
	return t
}()

func parseSize(s string) (int64, error) {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("size %q is not a decimal number", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("size %q has a leading zero", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > MaxBlockSize {
		return 0, fmt.Errorf("size %s exceeds the maximum block size %d", s, MaxBlockSize)
	}
	return n, nil
}

func checkHint(h string) error {
	if h == "" {
		return errors.New("empty hint (leading, trailing or doubled '+')")
	}
	if h[0] < 'A' || h[0] > 'Z' {
		return fmt.Errorf("hint %q does not start with an uppercase letter", h)
	}
	for i := 1; i < len(h); i++ {
		c := h[i]
		if !isDigit(c) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '@' && c != '_' && c != '-' {
			return fmt.Errorf("hint %q contains %q", h, c)
		}
	}
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// String formats l as hash[+size][+hint...].
func (l Locator) String() string {
	var b strings.Builder
	b.Grow(48 + 8*len(l.Hints))
	b.WriteString(l.Hash)
	if l.Size >= 0 {
		b.WriteByte('+')
		b.WriteString(strconv.FormatInt(l.Size, 10))
	}
	for _, h := range l.Hints {
		b.WriteByte('+')
		b.WriteString(h)
	}
	return b.String()
}

// Bare returns hash+size with no hints (hash alone when the size is unknown).
func (l Locator) Bare() Locator {
	return Locator{Hash: l.Hash, Size: l.Size}
}

// IsEmptyBlock reports whether l names the empty block.
func (l Locator) IsEmptyBlock() bool {
	return l.Hash == EmptyHash && l.Size <= 0
}

// HintsWithPrefix returns the hints that start with prefix, in order,
// with the prefix removed.
func (l Locator) HintsWithPrefix(prefix string) []string {
	var out []string
	for _, h := range l.Hints {
		if v, ok := strings.CutPrefix(h, prefix); ok {
			out = append(out, v)
		}
	}
	return out
}
