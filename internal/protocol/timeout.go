package protocol

import (
	"errors"
	"net"
	"os"
)

// IsTimeout reports whether err is a connection's deadline passing: how
// the block server and the proxy see a request body that stopped
// arriving in time.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
