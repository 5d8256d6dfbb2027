package keepstore

import (
	"sync"

	"github.com/keepproject/keep/internal/protocol"
)

// workList is a list of work items that a PUT replaces as a whole (the
// pull and trash lists of keep-balance), worked by a fixed pool of
// workers. Items of the old list not yet started are dropped; those in
// progress finish.
type workList[T any] struct {
	mu      sync.Mutex
	cond    *sync.Cond // signalled when pending grows or the list closes
	pending []T
	closed  bool
	st      WorkStatus
	// gen counts the lists received; report is the current one's.
	gen    int
	report protocol.ListReport
	// where names an item in a report: its locator and mount.
	where func(T) (locator, mount string)
}

// WorkStatus reports a work list's progress, in /_status.
type WorkStatus struct {
	// Queued is the number of items not yet started.
	Queued int `json:"queued"`
	// InProgress is the number of items being worked on.
	InProgress int `json:"in_progress"`
	// Done counts the items carried out since the server started.
	Done int64 `json:"done"`
	// Skipped counts the items left alone by rule (too new, changed
	// since listed, unknown or read-only mount, already there).
	Skipped int64 `json:"skipped"`
	// Failed counts the items that failed.
	Failed int64 `json:"failed"`
	// LastError is the most recent failure, if any.
	LastError string `json:"last_error,omitempty"`
}

// outcome is what became of one work item.
type outcome int

const (
	done outcome = iota
	skipped
	failed
)

func newWorkList[T any](where func(T) (locator, mount string)) *workList[T] {
	l := &workList[T]{where: where, report: protocol.ListReport{Failures: []protocol.ItemFailure{}}}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// ticket is an item taken from the list: which list it came from.
type ticket struct{ gen int }

// replace makes items the list of pending work, and starts its report.
func (l *workList[T]) replace(items []T) {
	l.mu.Lock()
	l.pending = items
	l.st.Queued = len(items)
	l.gen++
	l.report = protocol.ListReport{Items: len(items), Queued: len(items), Failures: []protocol.ItemFailure{}}
	l.mu.Unlock()
	l.cond.Broadcast()
}

// next waits for an item and marks it in progress; ok is false once the
// list is closed.
func (l *workList[T]) next() (item T, t ticket, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.pending) == 0 && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		return item, t, false
	}
	item, l.pending = l.pending[0], l.pending[1:]
	l.st.Queued--
	l.st.InProgress++
	l.report.Queued--
	l.report.InProgress++
	return item, ticket{l.gen}, true
}

// finish records the outcome of an item returned by next; err is the
// failure, when o is failed. The report counts it only if its list is
// still the current one.
func (l *workList[T]) finish(item T, t ticket, o outcome, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.st.InProgress--
	current := t.gen == l.gen
	if current {
		l.report.InProgress--
	}
	switch o {
	case done:
		l.st.Done++
		if current {
			l.report.Done++
		}
	case skipped:
		l.st.Skipped++
		if current {
			l.report.Skipped++
		}
	case failed:
		l.st.Failed++
		if err != nil {
			l.st.LastError = err.Error()
		}
		if !current {
			break
		}
		l.report.Failed++
		if len(l.report.Failures) < protocol.MaxReportedFailures {
			f := protocol.ItemFailure{Error: "failed"}
			f.Locator, f.MountUUID = l.where(item)
			if err != nil {
				f.Error = err.Error()
			}
			l.report.Failures = append(l.report.Failures, f)
		}
	}
}

// current returns the report of the current list.
func (l *workList[T]) current() protocol.ListReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.report
	r.Failures = append([]protocol.ItemFailure{}, r.Failures...)
	return r
}

// close drops pending work and makes next return false.
func (l *workList[T]) close() {
	l.mu.Lock()
	l.closed = true
	l.pending = nil
	l.st.Queued = 0
	l.report.Queued = 0
	l.mu.Unlock()
	l.cond.Broadcast()
}

// status returns the list's progress.
func (l *workList[T]) status() WorkStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}
