package keepclient

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// The marks of the down list expire after the hold, on a fake clock.
func TestDownListExpires(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	d := newDownList(10*time.Second, func() time.Time { return now })
	svcs := disks(3)
	a, b := svcs[0].URL(), svcs[1].URL()
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	d.note(a, refused)
	d.noteSlow(b)
	d.note(svcs[2].URL(), errors.New("timeout")) // other errors do not demote

	order := func() []string { return uuids(d.demote(svcs)) }
	if got, want := fmt.Sprint(order()), fmt.Sprint([]string{svcs[2].UUID, svcs[0].UUID, svcs[1].UUID}); got != want {
		t.Fatalf("order while both are marked %v, want %v", got, want)
	}
	now = t0.Add(9 * time.Second)
	if !d.isDown(a) || !d.isDown(b) {
		t.Fatal("marks expired before the hold")
	}
	d.note(a, nil) // a success clears a refusal...
	d.note(b, nil) // ...but not a lag
	if d.isDown(a) || !d.isDown(b) {
		t.Fatalf("after successes: a down %v, b down %v", d.isDown(a), d.isDown(b))
	}
	now = t0.Add(10 * time.Second)
	if d.isDown(b) {
		t.Fatal("lag mark outlived the hold")
	}
	off := newDownList(-1, func() time.Time { return now })
	off.note(a, refused)
	off.noteSlow(b)
	if off.isDown(a) || off.isDown(b) {
		t.Fatal("a negative hold still demotes")
	}
}
