//go:build linux

package keeptest

import (
	"encoding/binary"
	"net"
	"syscall"
)

// canWatchPeer reports whether peerGone can see a client hang up.
const canWatchPeer = true

// tcpEstablished is the Linux TCP_ESTABLISHED state.
const tcpEstablished = 1

// peerGone reports whether the client end of c has closed or reset the
// connection, without reading from it: data the client sent stays unread,
// so a stalled upload stays stalled. It asks the kernel for the TCP state,
// the first byte of struct tcp_info.
func peerGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var (
		info   int
		getErr error
	)
	if err := raw.Control(func(fd uintptr) {
		info, getErr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO)
	}); err != nil {
		return true // closed on our side
	}
	if getErr != nil {
		return false
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(info))
	return b[0] != tcpEstablished
}
