package netbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"

	"github.com/keepproject/keep/internal/proc"
)

// Command returns a command that runs the program name with args inside
// the host (ip netns exec, which execs the program in place, so the
// process started is the program itself). Start it with Start, Listen
// or Run, so that the testbed kills it when it closes; the kernel kills
// it too if this process dies first.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(h.tb.tools.ip, append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Start starts cmd, from Command, as proc.Start does; the testbed kills
// the process when it closes.
func (h *Host) Start(cmd *exec.Cmd, log *proc.Log) (*proc.Process, error) {
	h.tb.mu.Lock()
	defer h.tb.mu.Unlock()
	if h.tb.closed {
		return nil, fmt.Errorf("netbed: host %s: starting %s: the testbed is closed", h.name, cmd.Args)
	}
	p, err := proc.Start(cmd, log)
	if err != nil {
		return nil, fmt.Errorf("netbed: host %s: %w", h.name, err)
	}
	h.tb.procs = append(h.tb.procs, p)
	return p, nil
}

// Listen starts cmd, from Command, as proc.Listen does: with
// "--addr-file addrFile" appended, waiting for a line of its output
// matching ready (a stale addrFile is removed first). The testbed kills
// the process when it closes.
func (h *Host) Listen(ctx context.Context, cmd *exec.Cmd, log *proc.Log, addrFile string, ready *regexp.Regexp) (*proc.Process, netip.AddrPort, error) {
	if err := os.Remove(addrFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, netip.AddrPort{}, fmt.Errorf("netbed: host %s: %w", h.name, err)
	}
	cmd.Args = append(cmd.Args, "--addr-file", addrFile)
	p, err := h.Start(cmd, log)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	if _, err := p.WaitLine(ctx, ready); err != nil {
		p.Kill()
		return nil, netip.AddrPort{}, fmt.Errorf("netbed: host %s: %w", h.name, err)
	}
	addr, err := proc.ReadAddr(addrFile)
	if err != nil {
		p.Kill()
		return nil, netip.AddrPort{}, fmt.Errorf("netbed: host %s: %w", h.name, err)
	}
	return p, addr, nil
}

// Run runs cmd, from Command, to its end and returns its standard
// output and error. If ctx ends first the process is killed. A non-zero
// exit is an error carrying the standard error.
func (h *Host) Run(ctx context.Context, cmd *exec.Cmd) (stdout, stderr string, err error) {
	var out bytes.Buffer
	cmd.Stdout = &out
	log := proc.NewLog(0)
	p, err := h.Start(cmd, log)
	if err != nil {
		return "", "", err
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		p.Kill()
	}
	err = p.Wait()
	if err == nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err != nil {
		err = fmt.Errorf("netbed: host %s: %s: %v: %s", h.name, program(cmd), err, log.Tail(4<<10))
	}
	return out.String(), log.String(), err
}

// program returns the program a command from Command runs, and its
// first argument, for error messages.
func program(cmd *exec.Cmd) string {
	args := cmd.Args
	if len(args) > 4 && args[1] == "netns" && args[2] == "exec" {
		args = args[4:]
	}
	return strings.Join(args[:min(len(args), 2)], " ")
}
