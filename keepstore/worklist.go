package keepstore

import (
	"encoding/hex"
	"strconv"
	"strings"
	"sync"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// workList is a list of work items that a PUT replaces as a whole (the
// pull and trash lists of keep-balance), worked by a fixed pool of
// workers. Items of the old list not yet started are dropped; those in
// progress finish.
type workList[T any] struct {
	mu      sync.Mutex
	cond    *sync.Cond // signalled when pending grows or the list closes
	pending queue[T]
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
func (l *workList[T]) replace(items []T) { l.replaceQueue(&sliceQueue[T]{items}) }

// replaceQueue makes q the list of pending work, and starts its report.
func (l *workList[T]) replaceQueue(q queue[T]) {
	l.mu.Lock()
	n := q.len()
	l.pending = q
	l.st.Queued = n
	l.gen++
	l.report = protocol.ListReport{Items: n, Queued: n, Failures: []protocol.ItemFailure{}}
	l.mu.Unlock()
	l.cond.Broadcast()
}

// next waits for an item and marks it in progress; ok is false once the
// list is closed.
func (l *workList[T]) next() (item T, t ticket, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for (l.pending == nil || l.pending.len() == 0) && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		return item, t, false
	}
	item = l.pending.pop()
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

// queue is the pending items of a list, in order.
type queue[T any] interface {
	len() int
	// pop removes the first item and returns it; the queue is not empty.
	pop() T
}

// sliceQueue is a queue of items as they are.
type sliceQueue[T any] struct{ items []T }

func (q *sliceQueue[T]) len() int { return len(q.items) }

func (q *sliceQueue[T]) pop() T {
	it := q.items[0]
	q.items = q.items[1:]
	return it
}

// A received list keeps its items compactly, so that a list of millions
// costs a few dozen bytes an item however it arrived: a hash as its 16
// bytes, a size, and indexes into tables of the distinct mount uuids and
// (for pulls) source server lists, which are few. The item a worker
// takes is rebuilt as the protocol item, with the locator text it came
// with.

// compactLoc is a locator: hash and size (-1 for none). A locator with
// hints is kept as text aside (listTables.odd), since reports quote it.
type compactLoc struct {
	hash [16]byte
	size int32
}

// listTables holds what a received list's items share.
type listTables struct {
	mounts   []string
	mountIdx map[string]uint32 // while the list is built
	// odd is the locator text of the items, by index, whose locator is
	// not hash[+size].
	odd map[uint32]string
}

// loc makes the compact form of a locator that locator.Parse accepted,
// for the item at index i.
func (tb *listTables) loc(i int, text string, l locator.Locator) compactLoc {
	var c compactLoc
	hex.Decode(c.hash[:], []byte(l.Hash))
	c.size = int32(l.Size) // at most locator.MaxBlockSize, or -1
	if l.Hints != nil {
		if tb.odd == nil {
			tb.odd = make(map[uint32]string)
		}
		tb.odd[uint32(i)] = text
	}
	return c
}

// locator returns the text of item i's locator c.
func (tb *listTables) locator(i int, c compactLoc) string {
	if s, ok := tb.odd[uint32(i)]; ok {
		return s
	}
	var b [32 + 1 + 10]byte
	out := hex.AppendEncode(b[:0], c.hash[:])
	if c.size >= 0 {
		out = append(out, '+')
		out = strconv.AppendInt(out, int64(c.size), 10)
	}
	return string(out)
}

// mount returns the index of a mount uuid in the table, adding it.
func (tb *listTables) mount(uuid string) uint32 {
	if tb.mountIdx == nil {
		tb.mountIdx = make(map[string]uint32)
	}
	i, ok := tb.mountIdx[uuid]
	if !ok {
		i = uint32(len(tb.mounts))
		tb.mounts = append(tb.mounts, uuid)
		tb.mountIdx[uuid] = i
	}
	return i
}

// pullEntry is a pull item, compactly.
type pullEntry struct {
	loc     compactLoc
	mount   uint32 // into listTables.mounts
	servers uint32 // into pullQueue.servers
}

// pullQueue is a received pull list.
type pullQueue struct {
	listTables
	items      []pullEntry
	head       int
	servers    [][]string
	serversIdx map[string]uint32 // while the list is built
}

// add appends an item that checkPullItem accepted, whose locator is l.
func (q *pullQueue) add(it protocol.PullItem, l locator.Locator) {
	if q.serversIdx == nil {
		q.serversIdx = make(map[string]uint32)
	}
	// URLs have no control characters, so a newline joins them
	// unambiguously.
	key := strings.Join(it.Servers, "\n")
	s, ok := q.serversIdx[key]
	if !ok {
		s = uint32(len(q.servers))
		q.servers = append(q.servers, it.Servers)
		q.serversIdx[key] = s
	}
	q.items = append(q.items, pullEntry{loc: q.loc(len(q.items), it.Locator, l), mount: q.mount(it.MountUUID), servers: s})
}

// done ends building: it returns the queue, without the maps that only
// building needs.
func (q *pullQueue) done() *pullQueue {
	q.serversIdx, q.mountIdx = nil, nil
	return q
}

func (q *pullQueue) len() int { return len(q.items) - q.head }

func (q *pullQueue) pop() protocol.PullItem {
	e := q.items[q.head]
	it := protocol.PullItem{Locator: q.locator(q.head, e.loc), Servers: q.servers[e.servers], MountUUID: q.mounts[e.mount]}
	q.head++
	return it
}

// trashEntry is a trash item, compactly.
type trashEntry struct {
	loc   compactLoc
	mount uint32 // into listTables.mounts
	mtime int64
}

// trashQueue is a received trash list.
type trashQueue struct {
	listTables
	items []trashEntry
	head  int
}

// add appends an item whose locator is l.
func (q *trashQueue) add(it protocol.TrashItem, l locator.Locator) {
	q.items = append(q.items, trashEntry{loc: q.loc(len(q.items), it.Locator, l), mount: q.mount(it.MountUUID), mtime: it.BlockMtime})
}

// done ends building: it returns the queue, without the map that only
// building needs.
func (q *trashQueue) done() *trashQueue {
	q.mountIdx = nil
	return q
}

func (q *trashQueue) len() int { return len(q.items) - q.head }

func (q *trashQueue) pop() protocol.TrashItem {
	e := q.items[q.head]
	it := protocol.TrashItem{Locator: q.locator(q.head, e.loc), BlockMtime: e.mtime, MountUUID: q.mounts[e.mount]}
	q.head++
	return it
}
