package keepclient

import (
	"context"
	"io"
	"net"
)

// sendChunk is the most of a block one write to a connection hands to
// the kernel. It is large, so that a 64 MiB block takes few system calls,
// and small enough that the stall watchdog, kicked after each write, sees
// progress every few seconds even on a link of a few tens of KB/s.
const sendChunk = 256 << 10

// dialer wraps each plain connection the transport dials in a bodyConn.
func dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &bodyConn{c}, nil
	}
}

// bodyConn is a connection that writes upload bodies straight from the
// caller's block. The transport hands a request body to the connection's
// ReadFrom (as an io.LimitedReader of Content-Length bytes); without
// this, net/http would copy the block through a 32 KiB buffer and write
// it 32 KiB at a time, which costs one extra copy of every byte sent and
// thousands of system calls per block and replica.
type bodyConn struct {
	net.Conn
}

// ReadFrom implements io.ReaderFrom.
func (c *bodyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if b, ok := lr.R.(*blockBody); ok {
			n, err := b.writeTo(c.Conn, lr.N)
			lr.N -= n
			return n, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
