//go:build unix

package flock

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	l, err := Take(p)
	if err != nil {
		t.Fatal(err)
	}
	var held *HeldError
	if _, err := Take(p); !errors.As(err, &held) || !errors.Is(err, ErrHeld) || held.Holder != strconv.Itoa(os.Getpid()) {
		t.Errorf("second Take = %v, want a HeldError naming this process", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	again, err := Take(p)
	if err != nil {
		t.Fatalf("Take after Unlock: %v", err)
	}
	again.Unlock()
	if _, err := Take(filepath.Join(p, "not a dir", "lock")); err == nil || errors.Is(err, ErrHeld) {
		t.Errorf("Take in a missing directory = %v, want a plain error", err)
	}
}
