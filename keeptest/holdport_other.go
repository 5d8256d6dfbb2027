//go:build !unix

package keeptest

import "net"

func holdPort(net.Addr) func() { return nil }
