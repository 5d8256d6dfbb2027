// Package flock takes exclusive locks on files with flock(2), recording
// the holder's process id in the file for the message the next comer
// gets. The kernel drops such a lock when its process dies, however it
// dies, so a crash never leaves anything locked. Where flock(2) is
// missing, Take takes no lock.
package flock

import (
	"errors"
	"fmt"
)

// ErrHeld is wrapped by the error Take returns when another process (or
// another Take in this one) holds the lock.
var ErrHeld = errors.New("lock held by another process")

// HeldError says which lock is held and by whom.
type HeldError struct {
	Path   string // the lock file
	Holder string // the process id written in it, if any
}

func (e *HeldError) Error() string {
	who := "another process"
	if e.Holder != "" {
		who = "process " + e.Holder
	}
	return fmt.Sprintf("%s is locked by %s", e.Path, who)
}

// Unwrap makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Unwrap() error { return ErrHeld }
