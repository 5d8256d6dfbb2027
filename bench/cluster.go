package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/localcluster"
)

// Server is one block server a benchmark writes to.
type Server struct {
	Service keepclient.Service
	// Dir is the server's volume directory; "" when unknown, and then
	// the storage ratio is not measured.
	Dir string
	// PID is the server's process id; 0 when it runs in this process or
	// elsewhere, and then its CPU time is not measured separately.
	PID int

	stop   func() error
	remote bool // runs elsewhere: its CPU time cannot be read
}

// Stop stops the server, if the Launcher that started it can.
func (s *Server) Stop() error {
	if s.stop == nil {
		return nil
	}
	return s.stop()
}

// A Launcher provides the block servers for one measurement.
type Launcher interface {
	// Launch starts n block servers keeping their data under dir, which
	// exists and is empty. The caller stops every returned server, also
	// when Launch fails part way.
	Launch(ctx context.Context, dir string, n int) ([]*Server, error)
	// Kind names the servers for the report.
	Kind() string
}

// Processes launches each block server as a child process running
// Command with "--listen 127.0.0.1:0 --volume DIR --addr-file FILE"
// appended, as "keep server" accepts. A server is ready once it writes a
// line containing "listening"; it is then asked for its address through
// the addr file.
type Processes struct {
	// Command is the program and its first arguments, such as
	// {"/usr/bin/keep", "server"}.
	Command []string
	// ReadyTimeout bounds a server's start-up. Default 30s.
	ReadyTimeout time.Duration
	// Volume, if set, gives server i the --volume argument to use in
	// place of a directory under dir (an S3 URL, say), and the
	// directory where its blocks can be counted as DIR/xyz/HASH, or ""
	// if there is none.
	Volume func(i int, dir string) (arg, blockDir string, err error)
}

var _ Launcher = Processes{}

// Kind implements Launcher.
func (p Processes) Kind() string { return "keep server processes" }

// Launch implements Launcher. The servers start concurrently.
func (p Processes) Launch(ctx context.Context, dir string, n int) ([]*Server, error) {
	const op = "bench.Processes.Launch"
	if len(p.Command) == 0 {
		return nil, errors.New(op + ": no command")
	}
	timeout := p.ReadyTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = p.start(ctx, dir, i, timeout)
		}()
	}
	wg.Wait()
	var started []*Server
	for _, s := range servers {
		if s != nil {
			started = append(started, s)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return started, fmt.Errorf("%s: %w", op, err)
	}
	return started, nil
}

// start runs server i and waits until it is ready. On failure the
// process, if it started, has been killed.
func (p Processes) start(ctx context.Context, dir string, i int, timeout time.Duration) (*Server, error) {
	vol := filepath.Join(dir, "server-"+strconv.Itoa(i))
	if err := os.Mkdir(vol, 0o755); err != nil {
		return nil, err
	}
	addrFile := vol + ".addr"
	arg, blockDir := vol, vol
	if p.Volume != nil {
		var err error
		if arg, blockDir, err = p.Volume(i, dir); err != nil {
			return nil, fmt.Errorf("server %d: %w", i, err)
		}
	}
	args := append(append([]string(nil), p.Command[1:]...), "--listen", "127.0.0.1:0", "--volume", arg)
	cmd := exec.CommandContext(ctx, p.Command[0], args...)
	// On cancellation (Ctrl-C) ask politely first; Wait kills the
	// server if it has not exited after WaitDelay.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Only the end of the output is kept (for error messages): servers
	// log every request.
	sp, addr, err := proc.Listen(tctx, cmd, proc.NewLog(readyTail), addrFile, readyLine)
	if err != nil {
		return nil, fmt.Errorf("server %d not ready: %w", i, err)
	}
	srv := &Server{Dir: blockDir, PID: sp.PID()}
	srv.stop = sync.OnceValue(func() error {
		sp.Stop(stopGrace)
		return nil
	})
	srv.Service = keepclient.Service{UUID: serviceUUID(i), Host: addr.Addr().String(), Port: int(addr.Port()), Type: keepclient.TypeDisk}
	return srv, nil
}

// serviceUUID names the i'th benchmark server. The names only need to
// differ: the probe order comes from them.
func serviceUUID(i int) string { return fmt.Sprintf("bench-bi6l4-%015d", i) }

// readyLine is the line a server logs once it is ready; readyTail is how
// much of its output is kept for error messages; stopGrace is how long a
// server has to stop after SIGTERM before it is killed.
var readyLine = regexp.MustCompile("listening")

const (
	readyTail = 4 << 10
	stopGrace = 10 * time.Second
)

// InProcess runs block servers in this process with package
// localcluster. Their CPU time and memory then count as the client's, so
// use it only where separate processes are not available (tests).
type InProcess struct{}

var _ Launcher = InProcess{}

// Kind implements Launcher.
func (InProcess) Kind() string { return "in-process servers" }

// Launch implements Launcher.
func (InProcess) Launch(ctx context.Context, dir string, n int) ([]*Server, error) {
	c, err := localcluster.Start(ctx, localcluster.Config{Dir: dir, Servers: n})
	if err != nil {
		return nil, err
	}
	var out []*Server
	for i, node := range c.Servers {
		svc := node.Service
		svc.UUID = serviceUUID(i)
		out = append(out, &Server{Service: svc, Dir: node.Dir, stop: func() error { node.Stop(); return nil }})
	}
	return out, nil
}

// External uses block servers that run elsewhere: Launch returns the
// first n of Services and stops nothing. Their volumes and CPU time are
// unknown to the benchmark.
type External struct {
	Services []keepclient.Service
}

var _ Launcher = External{}

// Kind implements Launcher.
func (External) Kind() string { return "external services" }

// Launch implements Launcher.
func (e External) Launch(ctx context.Context, dir string, n int) ([]*Server, error) {
	if len(e.Services) < n {
		return nil, fmt.Errorf("bench.External.Launch: %d services listed, the benchmark needs %d", len(e.Services), n)
	}
	var out []*Server
	for _, s := range e.Services[:n] {
		out = append(out, &Server{Service: s, remote: true})
	}
	return out, nil
}

// deadService returns a disk service at a loopback port nobody listens
// on, so that connecting to it is refused, as to a stopped server.
func deadService(i int) (keepclient.Service, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return keepclient.Service{}, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return keepclient.Service{}, err
	}
	return keepclient.Service{UUID: serviceUUID(i), Host: "127.0.0.1", Port: port, Type: keepclient.TypeDisk}, nil
}
