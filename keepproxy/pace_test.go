package keepproxy

import (
	"testing"
	"time"
)

// TestPacer: every quantum must complete within a window of the previous
// one; bytes beyond a quantum earn no credit for later windows.
func TestPacer(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	p := newPacer(100, 10*time.Second, t0) // 1000 bytes per 10 s
	if p.deadline() != t0.Add(10*time.Second) {
		t.Fatalf("first deadline %v", p.deadline())
	}
	if p.progress(999, t0.Add(time.Second)) {
		t.Error("deadline moved before a quantum arrived")
	}
	if !p.progress(1, t0.Add(2*time.Second)) || p.deadline() != t0.Add(12*time.Second) {
		t.Errorf("after a quantum at 2s: deadline %v, want 12s", p.deadline().Sub(t0))
	}
	// A burst of ten quanta buys one window, not ten.
	if !p.progress(10000, t0.Add(3*time.Second)) || p.deadline() != t0.Add(13*time.Second) {
		t.Errorf("after a burst at 3s: deadline %v, want 13s", p.deadline().Sub(t0))
	}
	if q := newPacer(1, time.Millisecond, t0).quantum; q != 1 {
		t.Errorf("quantum %d for a tiny rate, want 1", q)
	}
}
