package reliability

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readyTimeout bounds a process's start-up, so that a server that hangs
// instead of listening fails the test rather than the whole test binary.
const readyTimeout = time.Minute

// testEnv returns an environment isolated from the user's configuration:
// no ARVADOS_ variables, and HOME and the XDG directories (where keep
// put keeps its resume cache and keep up its services file) in dir.
func testEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ARVADOS_") || strings.HasPrefix(name, "XDG_") || name == "HOME" || name == "KEEP_TOKEN" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir, "XDG_STATE_HOME="+filepath.Join(dir, "state"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
}

// proc is one long-running keep process (a server or a proxy).
type proc struct {
	cmd    *exec.Cmd
	out    *logTail
	exited chan struct{} // closed once the process has been waited for
}

// startProc runs keep with args and waits until it logs a line
// containing "listening". If it exits first (a port already taken, say)
// the error carries the end of its output.
func startProc(env []string, args ...string) (*proc, error) {
	cmd := exec.Command(keepBin, args...)
	cmd.Env = env
	out := newLogTail("listening")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-out.ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("keep %s exited before listening (%v): %s", args[0], cmd.ProcessState, out.tail())
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("keep %s not listening after %v: %s", args[0], readyTimeout, out.tail())
	}
}

// kill stops the process with SIGKILL, as a crash or the OOM killer
// would, and returns once it is gone, so that its port refuses
// connections and its files are closed.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *proc) peakRSS() (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid()) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmHWM line in /proc/" + strconv.Itoa(p.pid()) + "/status")
}

// logTail collects a process's output: it closes ready at the first
// complete line containing marker, and keeps the last few KiB for error
// messages (servers log every request, so all of it would be too much).
type logTail struct {
	marker []byte
	ready  chan struct{}

	mu   sync.Mutex // protects buf and seen
	buf  []byte
	seen bool
}

const tailSize = 8 << 10

func newLogTail(marker string) *logTail {
	return &logTail{marker: []byte(marker), ready: make(chan struct{})}
}

func (w *logTail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if !w.seen {
		if end := bytes.LastIndexByte(w.buf, '\n'); end >= 0 && bytes.Contains(w.buf[:end], w.marker) {
			w.seen = true
			close(w.ready)
		}
	}
	if w.seen && len(w.buf) > 2*tailSize {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-tailSize:]...)
	}
	return len(p), nil
}

// tail returns the end of the output.
func (w *logTail) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.buf
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
	}
	return strings.TrimSpace(string(b))
}

// runKeep runs a short-lived keep command and returns its stdout and
// stderr; err is non-nil when it exits non-zero.
func runKeep(env []string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(keepBin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// readAddrPort returns the port in an address file written by --addr-file.
func readAddrPort(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	addr := strings.TrimSpace(string(data))
	i := strings.LastIndexByte(addr, ':')
	port, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil || port <= 0 || port > 65535 {
		return 0, fmt.Errorf("%s: bad address %q", path, addr)
	}
	return port, nil
}

// isAddrInUse reports whether a process's output says its port was taken.
func isAddrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "address already in use")
}
