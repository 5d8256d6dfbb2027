// Package proc runs child processes that say in their output when they
// are ready, such as keep's servers: start one, wait for a line of its
// output matching a pattern, read the address it bound from its
// --addr-file, stop or kill it, and read its peak memory from /proc.
//
// It serves tests (through package proctest, which adds the keep binary
// and testing.TB helpers) and "keep bench", which runs real servers.
package proc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A Process is a started child process whose output goes to a Log.
type Process struct {
	cmd  *exec.Cmd
	log  *Log
	name string        // for error messages: the program and its first argument
	done chan struct{} // closed once the process has been waited for
	err  error         // from cmd.Wait, once done is closed
}

// Start starts cmd. Its standard output and standard error, those left
// nil, go to log (a new NewLog(0) if log is nil), which is closed when
// the process exits. The process is waited for in the background: use
// Wait, Done, Kill or Stop rather than cmd's own Wait.
func Start(cmd *exec.Cmd, log *Log) (*Process, error) {
	if log == nil {
		log = NewLog(0)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = log
	}
	if cmd.Stderr == nil {
		cmd.Stderr = log
	}
	name := filepath.Base(cmd.Path)
	if len(cmd.Args) > 1 {
		name += " " + cmd.Args[1]
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Process{cmd: cmd, log: log, name: name, done: make(chan struct{})}
	go func() {
		// Wait returns once the output has been copied to its writers.
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// Listen starts cmd with "--addr-file addrFile" appended to its
// arguments, as keep's servers, proxy and registry accept, waits until a
// line of its output matches ready, then reads the address it bound from
// addrFile (an unspecified address, as from --listen :0, is returned as
// 127.0.0.1). A stale addrFile is removed first. ctx bounds only the
// wait. If the process exits first, or ctx ends, or the address cannot
// be read, the process is killed and the error carries the end of its
// output.
func Listen(ctx context.Context, cmd *exec.Cmd, log *Log, addrFile string, ready *regexp.Regexp) (*Process, netip.AddrPort, error) {
	if err := os.Remove(addrFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, netip.AddrPort{}, err
	}
	cmd.Args = append(cmd.Args, "--addr-file", addrFile)
	p, err := Start(cmd, log)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	if _, err := p.WaitLine(ctx, ready); err != nil {
		p.Kill()
		return nil, netip.AddrPort{}, err
	}
	addr, err := ReadAddr(addrFile)
	if err != nil {
		p.Kill()
		return nil, netip.AddrPort{}, fmt.Errorf("%s: %w", p.name, err)
	}
	return p, addr, nil
}

// WaitLine waits until a line of the process's output matches re, as
// Log.WaitLine, and returns the match. If the process exits first the
// error says how, with the end of its output.
func (p *Process) WaitLine(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	m, err := p.log.WaitLine(ctx, re)
	if errors.Is(err, ErrClosed) {
		<-p.done
		return nil, fmt.Errorf("%s exited (%v) before a line of its output matched %q; output:\n%s", p.name, p.exitState(), re, p.log.Tail(errorTail))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	return m, nil
}

// exitState describes how the process ended.
func (p *Process) exitState() string {
	if p.err != nil {
		return p.err.Error()
	}
	return p.cmd.ProcessState.String()
}

// Log returns the Log the process's output goes to.
func (p *Process) Log() *Log { return p.log }

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Done is closed once the process has exited and its output is all in
// its Log.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits until the process has exited and returns what exec.Cmd's
// Wait returned: nil for exit status 0.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// State returns how the process exited; nil while it runs.
func (p *Process) State() *os.ProcessState {
	select {
	case <-p.done:
		return p.cmd.ProcessState
	default:
		return nil
	}
}

// Kill stops the process with SIGKILL, as a crash or the OOM killer
// would, and returns once it is gone (its ports refuse connections and
// its files are closed). It does nothing more if the process has exited.
func (p *Process) Kill() error {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
	}
	return p.Wait()
}

// Stop asks the process to stop with SIGTERM and waits for it; if it has
// not exited after grace it is killed with SIGKILL. It returns what Wait
// returns.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		p.cmd.Process.Kill()
	}
	return p.Wait()
}

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes.
// It works only while the process runs (Linux).
func (p *Process) PeakRSS() (int64, error) { return PeakRSS(p.PID()) }

// ReadAddr reads an address file, as --addr-file writes: "host:port" and
// a line break. An unspecified host (0.0.0.0 or ::) is returned as
// 127.0.0.1; port 0 is an error.
func ReadAddr(path string) (netip.AddrPort, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return netip.AddrPort{}, err
	}
	text := strings.TrimSpace(string(data))
	ap, err := netip.ParseAddrPort(text)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("address file %s: bad address %q", path, text)
	}
	if ap.Addr().IsUnspecified() {
		ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port())
	}
	return ap, nil
}

// PeakRSS returns the peak resident set size (VmHWM) of the process pid
// in bytes, from /proc/PID/status (Linux).
func PeakRSS(pid int) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	n, err := ParseVmHWM(data)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return n, nil
}

// ParseVmHWM returns the peak resident set size ("VmHWM") in a
// /proc/PID/status document, in bytes.
func ParseVmHWM(data []byte) (int64, error) {
	const op = "proc.ParseVmHWM"
	for line := range strings.SplitSeq(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: malformed line %q", op, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("%s: malformed line %q", op, line)
		}
		return kb << 10, nil
	}
	return 0, errors.New(op + ": no VmHWM line")
}
