package keepclient

import (
	"fmt"
	"testing"

	"github.com/keepproject/keep/internal/protocol"
)

// The yield list keeps the last count per service, in range, and a
// bounded number of services.
func TestYieldList(t *testing.T) {
	y := newYieldList()
	a, b := disks(2)[0].URL(), disks(2)[1].URL()
	y.note(a, 2)
	y.note(b, -3)
	if y.expect(a) != 2 || y.expect(b) != 0 || y.expect("http://unknown") != 0 {
		t.Errorf("expect %d %d", y.expect(a), y.expect(b))
	}
	y.note(a, 1) // the last answer counts, not the largest
	y.note(b, 1<<40)
	if y.expect(a) != 1 || y.expect(b) != protocol.MaxReplicas {
		t.Errorf("after more answers: expect %d %d", y.expect(a), y.expect(b))
	}
	for i := range 3 * maxYields {
		y.note(fmt.Sprint("http://h", i), 2)
		y.note(a, 2)
	}
	if n := len(y.last); n > maxYields {
		t.Errorf("%d services remembered, at most %d wanted", n, maxYields)
	}
	if y.expect(a) != 2 {
		t.Errorf("a service written just now forgotten")
	}
}
