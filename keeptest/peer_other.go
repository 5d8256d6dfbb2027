//go:build !linux

package keeptest

import "net"

// canWatchPeer reports whether peerGone can see a client hang up. Off
// Linux, a handler paused before reading the whole request body notices a
// hang-up only when the cluster closes.
const canWatchPeer = false

func peerGone(net.Conn) bool { return false }
