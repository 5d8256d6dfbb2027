package netbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Delay is a TCP forwarder inside a host that passes every byte on
// after a fixed delay, each way: the latency tc cannot add on kernels
// without netem. It runs in this process.
type Delay struct {
	addr   netip.AddrPort
	ln     net.Listener
	target string
	delay  time.Duration

	wg    sync.WaitGroup
	mu    sync.Mutex            // protects conns
	conns map[net.Conn]struct{} // nil once closed
	close sync.Once
}

// delayChunk is the most a Delay reads at once; delayQueue is how many
// chunks it holds per direction (8 MiB: the delay times the rate must
// fit, 250 KB for 10 ms at 200 Mbit/s).
const (
	delayChunk = 32 << 10
	delayQueue = 256
)

// StartDelay starts a forwarder listening on 127.0.0.1 inside h, at a
// port of its choosing (Addr), that forwards each connection to target,
// delaying what passes each way by delay: a client on h that connects
// through it sees a round trip 2×delay longer. The testbed stops it when
// it closes.
func (h *Host) StartDelay(target netip.AddrPort, delay time.Duration) (*Delay, error) {
	d := &Delay{target: target.String(), delay: delay, conns: make(map[net.Conn]struct{})}
	ready := make(chan error, 1)
	d.wg.Add(1)
	// Sockets belong to the namespace of the thread that creates them:
	// the listener and every outgoing connection are made on one
	// thread that has entered h's namespace. It is never unlocked, so
	// it ends with its goroutine instead of returning to the runtime in
	// the wrong namespace.
	go func() {
		defer d.wg.Done()
		runtime.LockOSThread()
		if err := enterNamespace(h.ns); err != nil {
			ready <- err
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ready <- err
			return
		}
		d.ln, d.addr = ln, ln.Addr().(*net.TCPAddr).AddrPort()
		ready <- nil
		d.accept()
	}()
	if err := <-ready; err != nil {
		d.wg.Wait()
		return nil, fmt.Errorf("netbed: host %s: delay forwarder: %w", h.name, err)
	}
	if err := h.tb.addCloser(d.Close); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// enterNamespace moves the calling thread into the network namespace
// ns.
func enterNamespace(ns string) error {
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering namespace %s: %w", ns, err)
	}
	return nil
}

// Addr returns the address to connect to, inside the forwarder's host.
func (d *Delay) Addr() netip.AddrPort { return d.addr }

// accept forwards connections until the listener closes. It runs on
// the thread in the host's namespace, where the connections to the
// target must be made.
func (d *Delay) accept() {
	for {
		in, err := d.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", d.target)
		if err != nil || !d.track(in, out) {
			in.Close()
			if out != nil {
				out.Close()
			}
			continue
		}
		d.wg.Add(3)
		var both sync.WaitGroup
		both.Add(2)
		go func() {
			defer d.wg.Done()
			both.Wait()
			d.untrack(in, out)
		}()
		go d.pipe(out, in, &both)
		go d.pipe(in, out, &both)
	}
}

// track records the connections of one forwarded connection, unless the
// forwarder is closed.
func (d *Delay) track(conns ...net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		return false
	}
	for _, c := range conns {
		d.conns[c] = struct{}{}
	}
	return true
}

// untrack closes the connections of one forwarded connection, both
// directions done, and forgets them.
func (d *Delay) untrack(conns ...net.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(d.conns, c)
	}
}

// pipe copies src to dst, each chunk written delay after it was read,
// then passes the end of src on as dst's end of writing, and marks done.
func (d *Delay) pipe(dst, src net.Conn, done *sync.WaitGroup) {
	defer d.wg.Done()
	defer done.Done()
	type chunk struct {
		due  time.Time
		data []byte
	}
	queue := make(chan chunk, delayQueue)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, delayChunk)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{time.Now().Add(d.delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	failed := false
	for c := range queue {
		if wait := time.Until(c.due); wait > 0 && !failed {
			timer.Reset(wait)
			<-timer.C
		}
		if !failed {
			if _, err := dst.Write(c.data); err != nil {
				// Keep draining so the reader ends; closing src makes it.
				failed = true
				src.Close()
			}
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok && !failed {
		tc.CloseWrite()
	}
}

// Close stops the forwarder: no new connections, and those in progress
// are closed. It waits for its goroutines. Closing again does nothing.
func (d *Delay) Close() error {
	var err error
	d.close.Do(func() {
		if err = d.ln.Close(); errors.Is(err, net.ErrClosed) {
			err = nil
		}
		d.mu.Lock()
		for c := range d.conns {
			c.Close()
		}
		d.conns = nil
		d.mu.Unlock()
		d.wg.Wait()
	})
	return err
}
