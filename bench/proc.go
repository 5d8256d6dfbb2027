package bench

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keepproject/keep/internal/proc"
)

// clockTick is the unit of the CPU times in /proc/PID/stat. Linux
// exports USER_HZ = 100 to user space on every architecture Go supports,
// and reading sysconf(_SC_CLK_TCK) would need cgo.
const clockTick = 10 * time.Millisecond

// parseProcStat returns the user plus system CPU time in a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may itself contain spaces and parentheses, so fields are counted from
// the last ')'.
func parseProcStat(data []byte) (time.Duration, error) {
	const op = "bench.parseProcStat"
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("%s: no ')' after the command name", op)
	}
	// After ')' come fields 3 (state) onwards; utime and stime are
	// fields 14 and 15, so indexes 11 and 12 here.
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s: %d fields after the command name, want at least 13", op, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s: bad CPU time %q", op, f)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// processCPU returns the CPU time (user plus system) used so far by the
// process pid.
func processCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseProcStat(data)
}

// selfCPU returns the CPU time (user plus system) used so far by this
// process, all threads included.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// resetPeakMemory returns memory the Go runtime holds but does not use
// to the kernel, then resets this process's peak resident set size to its
// current size, so that peakMemory afterwards reports the peak of what
// follows alone.
func resetPeakMemory() error {
	runtime.GC()
	debug.FreeOSMemory()
	// Writing 5 to clear_refs resets VmHWM (Linux 4.0 and later).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak memory: %w", err)
	}
	return nil
}

// peakMemory returns this process's peak resident set size in bytes.
func peakMemory() (int64, error) {
	return proc.PeakRSS(os.Getpid())
}
