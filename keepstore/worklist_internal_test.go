package keepstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/keepproject/keep/internal/protocol"
)

// The report counts the current list only: an item of a replaced list
// that finishes later is not in it; failures are kept, up to a bound,
// with their reasons.
func TestWorkListReport(t *testing.T) {
	l := newWorkList(func(it protocol.PullItem) (string, string) { return it.Locator, it.MountUUID })
	item := func(i int) protocol.PullItem {
		return protocol.PullItem{Locator: fmt.Sprintf("%032x+%d", i, i), MountUUID: "m"}
	}
	l.replace([]protocol.PullItem{item(1), item(2)})
	old, oldTicket, _ := l.next()
	l.replace([]protocol.PullItem{item(3), item(4), item(5)})
	l.finish(old, oldTicket, failed, errors.New("from the old list"))
	if r := l.current(); r.Items != 3 || r.Queued != 3 || r.InProgress != 0 || r.Failed != 0 || len(r.Failures) != 0 || r.Finished() {
		t.Fatalf("after the old list's item failed: %+v", r)
	}
	for _, o := range []outcome{done, skipped, failed} {
		it, tk, ok := l.next()
		if !ok {
			t.Fatal("list closed")
		}
		l.finish(it, tk, o, errors.New("no source had it"))
	}
	r := l.current()
	if r.Done != 1 || r.Skipped != 1 || r.Failed != 1 || !r.Finished() {
		t.Errorf("report %+v", r)
	}
	if len(r.Failures) != 1 || r.Failures[0] != (protocol.ItemFailure{Locator: item(5).Locator, MountUUID: "m", Error: "no source had it"}) {
		t.Errorf("failures %+v", r.Failures)
	}
	if st := l.status(); st.Failed != 2 || st.Done != 1 {
		t.Errorf("the since-start status counts every list: %+v", st)
	}

	// Past the bound, failures are counted, not listed.
	many := make([]protocol.PullItem, protocol.MaxReportedFailures+5)
	l.replace(many)
	for range many {
		it, tk, _ := l.next()
		l.finish(it, tk, failed, errors.New("x"))
	}
	if r := l.current(); r.Failed != len(many) || len(r.Failures) != protocol.MaxReportedFailures {
		t.Errorf("%d failed, %d listed", r.Failed, len(r.Failures))
	}
	l.close()
	if _, _, ok := l.next(); ok {
		t.Error("next after close")
	}
}
