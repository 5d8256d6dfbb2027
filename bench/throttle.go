package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Throttle is a TCP forwarder that relays connections to a target address
// at a limited rate: at most Rate bytes per second in each direction,
// shared by all its connections, as if the server behind it sat on a slow
// link or disk. Put a Throttle's address in a services list in place of a
// server's to make that server slow.
type Throttle struct {
	target string
	l      net.Listener
	up     *limiter // client to server
	down   *limiter // server to client
	chunk  int      // bytes relayed per limiter reservation
	done   chan struct{}
	wg     sync.WaitGroup // accept loop and relays

	mu     sync.Mutex // protects conns, closed and idle
	conns  map[net.Conn]struct{}
	closed bool
	idle   chan struct{} // closed when conns next becomes empty; nil if nobody waits
}

// NewThrottle starts a Throttle listening on a free loopback port and
// relaying to target ("host:port") at rate bytes per second each way.
func NewThrottle(target string, rate float64) (*Throttle, error) {
	const op = "bench.NewThrottle"
	if rate <= 0 {
		return nil, errors.New(op + ": rate must be positive")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	// About 100 reservations a second keeps the pace smooth without
	// spending the benchmark's CPU on timers.
	chunk := min(max(int(rate/100), 512), 64<<10)
	t := &Throttle{
		target: target,
		l:      l,
		up:     newLimiter(rate),
		down:   newLimiter(rate),
		chunk:  chunk,
		done:   make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
	}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// Addr returns the address the Throttle listens on.
func (t *Throttle) Addr() *net.TCPAddr { return t.l.Addr().(*net.TCPAddr) }

// Close stops accepting, drops every relayed connection and waits for
// the Throttle's goroutines to finish.
func (t *Throttle) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	err := t.l.Close()
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return err
}

// track records c so that Close can drop it; it reports false, having
// closed c, once the Throttle is closed.
func (t *Throttle) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Throttle) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	if len(t.conns) == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
	t.mu.Unlock()
	c.Close()
}

// Drain waits until the Throttle relays no connection, or ctx ends.
// After a client closes its side, the Throttle still delivers the bytes
// it had buffered to the server and relays until the server ends the
// connection, so once Drain returns the server has handled every request
// that reached it through the Throttle. Connections a client keeps open
// (HTTP keep-alive) are still relayed: close them first.
func (t *Throttle) Drain(ctx context.Context) error {
	for {
		t.mu.Lock()
		if len(t.conns) == 0 {
			t.mu.Unlock()
			return nil
		}
		if t.idle == nil {
			t.idle = make(chan struct{})
		}
		idle := t.idle
		t.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("bench.Throttle.Drain: %d connections still open: %w", t.open(), context.Cause(ctx))
		}
	}
}

// open returns the number of relayed connections; each counts once
// though the Throttle holds both its ends.
func (t *Throttle) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return (len(t.conns) + 1) / 2
}

func (t *Throttle) accept() {
	defer t.wg.Done()
	for {
		c, err := t.l.Accept()
		if err != nil {
			return
		}
		if !t.track(c) {
			return
		}
		t.wg.Add(1)
		go t.serve(c)
	}
}

// serve relays one client connection until both directions end.
func (t *Throttle) serve(client net.Conn) {
	defer t.wg.Done()
	defer t.untrack(client)
	server, err := net.DialTimeout("tcp", t.target, 5*time.Second)
	if err != nil {
		return
	}
	if !t.track(server) {
		return
	}
	defer t.untrack(server)
	var relays sync.WaitGroup
	relays.Add(2)
	go func() {
		defer relays.Done()
		t.relay(server, client, t.up)
	}()
	go func() {
		defer relays.Done()
		t.relay(client, server, t.down)
	}()
	relays.Wait()
}

// relay copies src to dst at the limiter's pace. At the end of src it
// passes the half-close on, so a request and its response can still
// cross; on an error it closes both, ending the other direction too.
func (t *Throttle) relay(dst, src net.Conn, lim *limiter) {
	buf := make([]byte, t.chunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !t.wait(lim.reserve(n)) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			return
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// wait pauses for d, reporting false if the Throttle closes meanwhile.
func (t *Throttle) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-t.done:
		return false
	}
}

// limiter spaces out byte transfers to a steady rate. It grants no
// burst: time not used is lost, as on a real link.
type limiter struct {
	perByte float64 // nanoseconds per byte

	mu   sync.Mutex // protects next
	next time.Time  // when the link is free again
}

func newLimiter(rate float64) *limiter {
	return &limiter{perByte: 1e9 / rate}
}

// reserve books n bytes on the link and returns how long the caller
// must wait before sending them.
func (l *limiter) reserve(n int) time.Duration {
	return l.reserveAt(time.Now(), n)
}

func (l *limiter) reserveAt(now time.Time, n int) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next.Before(now) {
		l.next = now
	}
	wait := l.next.Sub(now)
	l.next = l.next.Add(time.Duration(float64(n) * l.perByte))
	return wait
}
