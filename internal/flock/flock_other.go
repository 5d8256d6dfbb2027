//go:build !unix

package flock

// Lock is a lock taken by Take.
type Lock struct{}

// Take takes no lock where flock(2) is missing.
func Take(path string) (*Lock, error) { return &Lock{}, nil }

// Unlock does nothing.
func (l *Lock) Unlock() error { return nil }
