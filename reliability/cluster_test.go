package reliability

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
)

// server is one "keep server" process with its own volume directory. It
// can be killed and started again on the same port and volume.
type server struct {
	bin      string // the keep binary
	index    int
	dir      string // the volume
	addrFile string

	mu    sync.Mutex    // protects the fields below
	port  int           // 0 until first started
	extra []string      // flags added to every start, such as --capacity
	p     *proc.Process // nil while stopped
}

// newServer returns a stopped server keeping its volume and address
// file under root. It skips the test in -short mode.
func newServer(t *testing.T, root string, index int) (*server, error) {
	s := &server{
		bin:      proctest.Binary(t),
		index:    index,
		dir:      filepath.Join(root, "server-"+strconv.Itoa(index)),
		addrFile: filepath.Join(root, "server-"+strconv.Itoa(index)+".addr"),
	}
	return s, os.MkdirAll(s.dir, 0o755)
}

// start starts the server: on a port the kernel picks the first time (or
// every time, when samePort is false), afterwards on the port it had, so
// that a services file naming it stays right. Taking back a port we held
// a moment ago is safe enough; if another program took it meanwhile the
// start fails with an error isAddrInUse recognises.
func (s *server) start(env []string, samePort bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		return fmt.Errorf("server %d already running", s.index)
	}
	listen := "127.0.0.1:0"
	if samePort && s.port != 0 {
		listen = "127.0.0.1:" + strconv.Itoa(s.port)
	}
	args := append([]string{"server", "--listen", listen, "--volume", s.dir}, s.extra...)
	p, port, err := startKeep(s.bin, env, s.addrFile, args...)
	if err != nil {
		return fmt.Errorf("server %d: %w", s.index, err)
	}
	s.p, s.port = p, port
	return nil
}

// kill stops the server with SIGKILL; it does nothing if it is stopped.
func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		s.p.Kill()
		s.p = nil
	}
}

// setExtra sets the flags added to the server's next starts.
func (s *server) setExtra(args ...string) {
	s.mu.Lock()
	s.extra = args
	s.mu.Unlock()
}

// running returns the server's process, or nil while it is stopped.
func (s *server) running() *proc.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.p
}

// service describes the server for clients, with the port it last had.
func (s *server) service() keepclient.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return keepclient.Service{UUID: fmt.Sprintf("relia-bi6l4-%015d", s.index), Host: "127.0.0.1", Port: s.port, Type: keepclient.TypeDisk}
}

// cluster is a set of servers with a services file naming them, for
// keep put --services.
type cluster struct {
	env     []string
	servers []*server
	svcFile string
}

// startCluster starts n servers under a new temporary directory. Every
// process it or its users start through it is killed at cleanup.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	root := t.TempDir()
	c := &cluster{env: proctest.Env(t)}
	t.Cleanup(c.killAll)
	for i := range n {
		s, err := newServer(t, root, i)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.start(c.env, false); err != nil {
			t.Fatal(err)
		}
		c.servers = append(c.servers, s)
	}
	c.svcFile = filepath.Join(root, "services.json")
	if err := writeServices(c.svcFile, c.services()); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) killAll() {
	for _, s := range c.servers {
		s.kill()
	}
}

func (c *cluster) services() []keepclient.Service {
	var out []keepclient.Service
	for _, s := range c.servers {
		out = append(out, s.service())
	}
	return out
}

// dirs returns the servers' volume directories, in server order.
func (c *cluster) dirs() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.dir)
	}
	return out
}

// startProxy starts "keep proxy" in front of the cluster's servers and
// returns a services file naming only the proxy. It is killed at cleanup.
func (c *cluster) startProxy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "proxy.addr")
	p, port, err := startKeep(proctest.Binary(t), c.env, addrFile, "proxy", "--listen", "127.0.0.1:0", "--services", c.svcFile, "--any-token")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	file := filepath.Join(dir, "proxy-services.json")
	svc := keepclient.Service{UUID: "relia-bi6l4-proxy0000000000", Host: "127.0.0.1", Port: port, Type: keepclient.TypeProxy}
	if err := writeServices(file, []keepclient.Service{svc}); err != nil {
		t.Fatal(err)
	}
	return file
}

// writeServices writes svcs as Arvados keep_services/accessible JSON.
func writeServices(path string, svcs []keepclient.Service) error {
	data, err := keepclient.MarshalServices(svcs)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
