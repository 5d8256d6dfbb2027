package netbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Sweep removes what testbeds of processes that no longer exist left
// behind: a test binary killed (by a signal, a timeout, Ctrl-C) has no
// chance to Close its testbeds. Their namespaces (with every process
// still in them), veth devices and bridges are found by their names'
// prefix, which carries the id of the process that made them; those of
// running processes, this one included, are left alone.
func Sweep(ctx context.Context) error {
	t, err := findTools()
	if err != nil {
		return err
	}
	out, err := run(ctx, t.ip, "netns", "list")
	if err != nil {
		return fmt.Errorf("netbed: listing namespaces: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && leftover(f[0]) {
			errs = append(errs, removeHost(ctx, t, f[0], ""))
		}
	}
	devs, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("netbed: listing network devices: %w", err))...)
	}
	// Veth pairs first, then bridges, so a bridge is deleted empty.
	for _, bridges := range []bool{false, true} {
		for _, d := range devs {
			name := d.Name()
			if leftover(name) && strings.HasSuffix(name, "br") == bridges {
				errs = append(errs, removeHost(ctx, t, "", name))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netbed: removing leftovers: %w", err)
	}
	return nil
}

// leftover reports whether name is that of something a testbed made in
// a process that no longer exists.
func leftover(name string) bool {
	m := namePattern.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid <= 0 {
		return false
	}
	return !alive(pid)
}

// alive reports whether a process pid exists. A reused id makes a dead
// testbed look alive, which only delays its removal to a later Sweep.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
