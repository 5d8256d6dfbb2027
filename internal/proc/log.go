package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// ErrClosed is the error WaitLine wraps when the output ended (the
// process exited, or Close was called) before a line matched.
var ErrClosed = errors.New("output ended")

// errorTail bounds how much output an error message carries.
const errorTail = 64 << 10

// A Log collects the output written to it, a process's or a logger's,
// and lets callers wait for a line matching a pattern. It is safe for
// concurrent use. Waiting blocks on the writes themselves: nothing polls.
type Log struct {
	keep int // 0: keep everything

	mu      sync.Mutex // protects the fields below
	buf     []byte
	dropped int64 // bytes trimmed from the front of the output
	closed  bool
	done    chan struct{} // closed by Close
	waiters map[*waiter]struct{}
}

// waiter is one WaitLine call in progress.
type waiter struct {
	re    *regexp.Regexp
	next  int64         // offset in the whole output of the first line not yet tried
	match chan []string // receives the match, once
}

// NewLog returns an empty Log. With keep > 0 it keeps only about the
// last keep bytes of output (between keep and twice that), for processes
// that log without end; lines are still matched as they arrive, so none
// is missed by a WaitLine in progress. With keep 0 it keeps everything.
func NewLog(keep int) *Log {
	return &Log{keep: max(keep, 0), done: make(chan struct{}), waiters: map[*waiter]struct{}{}}
}

// Write implements io.Writer. It never fails.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for w := range l.waiters {
		if m := l.scan(w); m != nil {
			w.match <- m
			delete(l.waiters, w)
		}
	}
	if l.keep > 0 && len(l.buf) > 2*l.keep {
		cut := len(l.buf) - l.keep
		// Keep whole lines where there is a line break to cut at.
		if i := bytes.IndexByte(l.buf[cut:], '\n'); i >= 0 && cut+i+1 < len(l.buf) {
			cut += i + 1
		}
		l.buf = append(l.buf[:0], l.buf[cut:]...)
		l.dropped += int64(cut)
	}
	return len(p), nil
}

// Close marks the end of the output: a last line without a line break
// counts as complete, and WaitLine no longer waits. Writes after Close
// are still kept. Close may be called more than once.
func (l *Log) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for w := range l.waiters {
		if m := l.scan(w); m != nil {
			w.match <- m
			delete(l.waiters, w)
		}
	}
	close(l.done)
}

// scan tries w's pattern on each complete line from w.next on, and
// returns the first match (the whole match, then the submatches), or nil.
// l.mu must be held.
func (l *Log) scan(w *waiter) []string {
	start := int(max(w.next-l.dropped, 0))
	end := bytes.LastIndexByte(l.buf, '\n') + 1
	if l.closed {
		end = len(l.buf)
	}
	for start < end {
		line := l.buf[start:end]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
		}
		start += len(line) + 1
		if m := w.re.FindSubmatch(line); m != nil {
			w.next = l.dropped + int64(start)
			out := make([]string, len(m))
			for i, s := range m {
				out[i] = string(s)
			}
			return out
		}
	}
	w.next = l.dropped + int64(start)
	return nil
}

// WaitLine waits until a line of the output matches re, and returns the
// match and its submatches, as regexp.FindStringSubmatch. The lines
// already written count, from the first one still kept; a line counts
// once its line break has been written (or the Log is closed). It fails
// with an error wrapping ErrClosed if the output ends first, or with
// ctx's cause if ctx ends first; the error carries the end of the output.
func (l *Log) WaitLine(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	w, m, closed := l.watch(re)
	switch {
	case m != nil:
		return m, nil
	case closed:
		return nil, fmt.Errorf("%w before a line matched %q; output:\n%s", ErrClosed, re, l.Tail(errorTail))
	}
	select {
	case m := <-w.match:
		return m, nil
	case <-l.done:
	case <-ctx.Done():
	}
	l.mu.Lock()
	delete(l.waiters, w)
	l.mu.Unlock()
	select {
	case m := <-w.match: // matched meanwhile
		return m, nil
	default:
	}
	if ctx.Err() == nil {
		return nil, fmt.Errorf("%w before a line matched %q; output:\n%s", ErrClosed, re, l.Tail(errorTail))
	}
	return nil, fmt.Errorf("no line matched %q: %w; output:\n%s", re, context.Cause(ctx), l.Tail(errorTail))
}

// watch returns the first line already written that matches re, or else
// a waiter registered to receive the first line that will, or closed if
// there will be none.
func (l *Log) watch(re *regexp.Regexp) (w *waiter, m []string, closed bool) {
	w = &waiter{re: re, match: make(chan []string, 1)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if m = l.scan(w); m == nil && !l.closed {
		l.waiters[w] = struct{}{}
	}
	return w, m, l.closed
}

// String returns the output kept: all of it, or with NewLog(keep) its end.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// Tail returns at most the last n bytes of the output kept, without
// leading or trailing white space, for error messages.
func (l *Log) Tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
