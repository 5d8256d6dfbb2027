package reliability

import (
	"net"
	"strconv"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
)

// TestRestartOnTakenPort checks the harness itself: a server restarted
// on its old port after another listener took it fails with an error
// isAddrInUse recognises, which is how TestChaos's controller knows to
// give that restart up rather than fail.
func TestRestartOnTakenPort(t *testing.T) {
	proctest.Binary(t)
	root := t.TempDir()
	env := proctest.Env(t)
	s, err := newServer(t, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.kill)
	if err := s.start(env, false); err != nil {
		t.Fatal(err)
	}
	s.kill()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(s.service().Port))
	if err != nil {
		t.Skipf("could not take the port ourselves: %v", err)
	}
	defer l.Close()
	err = s.start(env, true)
	if !isAddrInUse(err) {
		t.Fatalf("restart on a taken port: %v, want address already in use", err)
	}
	if s.running() != nil {
		t.Error("failed start left a process recorded as running")
	}
}
