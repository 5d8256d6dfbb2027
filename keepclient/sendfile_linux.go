package keepclient

import (
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendFile sends n bytes of f from off to c with sendfile(2): the kernel
// passes page-cache pages to the socket without copying them through
// this process. f's own offset is not used or moved.
func sendFile(c *net.TCPConn, f *os.File, off int64, n int) error {
	crc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	frc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	sent := 0
	cerr := frc.Control(func(ffd uintptr) {
		werr := crc.Write(func(cfd uintptr) bool {
			for sent < n {
				pos := off + int64(sent)
				m, err := unix.Sendfile(int(cfd), int(ffd), &pos, n-sent)
				if m > 0 {
					sent += m
				}
				switch {
				case err == unix.EAGAIN:
					return false // wait until the socket takes more
				case err == unix.EINTR:
				case err != nil:
					serr = err
					return true
				case m == 0:
					serr = errShrunk(f)
					return true
				}
			}
			return true
		})
		if serr == nil {
			serr = werr
		}
	})
	if cerr != nil {
		return cerr
	}
	return serr
}
