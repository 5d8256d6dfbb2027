package reliability

import (
	"context"
	"os/exec"
	"regexp"
	"strings"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
)

// listening is the line a server or proxy logs once it accepts
// connections.
var listening = regexp.MustCompile("listening")

// tailSize is how much of a process's output is kept, for error
// messages: servers log every request, so all of it would be too much.
const tailSize = 8 << 10

// startKeep runs the keep binary bin with args in env, with
// "--addr-file addrFile" appended, waits until it logs a line containing
// "listening" and returns it with the port it bound. If it exits first (a
// port already taken, say) the error carries the end of its output; a
// process that hangs instead of listening fails after proctest.Timeout.
func startKeep(bin string, env []string, addrFile string, args ...string) (*proc.Process, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Timeout)
	defer cancel()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	p, addr, err := proc.Listen(ctx, cmd, proc.NewLog(tailSize), addrFile, listening)
	if err != nil {
		return nil, 0, err
	}
	return p, int(addr.Port()), nil
}

// isAddrInUse reports whether a process's output says its port was taken.
func isAddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}
