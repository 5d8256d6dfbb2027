//go:build !linux

package keepclient

import (
	"net"
	"os"
)

// sendFile sends n bytes of f from off to c, read through a buffer.
func sendFile(c *net.TCPConn, f *os.File, off int64, n int) error {
	p := make([]byte, n)
	if _, err := f.ReadAt(p, off); err != nil {
		return err
	}
	_, err := c.Write(p)
	return err
}
