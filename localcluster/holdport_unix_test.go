//go:build unix

package localcluster_test

import (
	"syscall"
	"testing"
)

// holdPort keeps a dead server's loopback port from being taken by another
// listener (other tests run in parallel) for the rest of the test: a
// socket bound without SO_REUSEADDR and not listening, so connections are
// still refused.
func holdPort(t *testing.T, port int) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return
	}
	t.Cleanup(func() { syscall.Close(fd) })
}
