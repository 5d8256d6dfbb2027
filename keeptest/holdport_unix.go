//go:build unix

package keeptest

import "syscall"

// holdPort binds, without listening and without SO_REUSEADDR, a socket to
// 127.0.0.1:port, so that connections to it are refused but no other
// listener can take the port. It returns a function that releases the
// port, or nil when the port could not be held.
func holdPort(port int) func() {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return nil
	}
	return func() { syscall.Close(fd) }
}
