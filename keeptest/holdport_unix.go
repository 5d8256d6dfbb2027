//go:build unix

package keeptest

import (
	"net"
	"syscall"
)

// holdPort binds, without listening and without SO_REUSEADDR, a socket to
// the address a killed server listened on, so that connections to it are
// still refused but no other listener (another test, another process)
// can take the port and answer in the dead server's place. It returns a
// function that releases the port, or nil when the port could not be held.
func holdPort(addr net.Addr) func() {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.To4() == nil {
		return nil
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil
	}
	sa := &syscall.SockaddrInet4{Port: tcp.Port}
	copy(sa.Addr[:], tcp.IP.To4())
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return nil
	}
	return func() { syscall.Close(fd) }
}
