package netbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
)

// helperEnv names the environment variable that makes
// TestHelperTestbed build a testbed and then fail, panic or wait to be
// killed: TestCleanup runs this test binary so.
const helperEnv = "NETBED_TEST_HELPER"

// TestHelperTestbed is not a test of its own: TestCleanup runs it in a
// child process. It builds a testbed with a host running a process,
// prints that process's id, and then ends as helperEnv says.
func TestHelperTestbed(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("a helper of TestCleanup")
	}
	tb := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Timeout)
	defer cancel()
	h, err := tb.AddHost(ctx, "a", Link{Rate: 10 * Mbit})
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Start(h.Command("sleep", "600"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\nready %d\n", p.PID())
	switch mode {
	case "fail":
		t.Fatal("failing on purpose")
	case "panic":
		panic("panicking on purpose")
	case "kill":
		// Until the parent kills this process, or dies itself.
		io.Copy(io.Discard, os.Stdin)
	}
}

// TestCleanup checks that a testbed is removed, with the processes in
// its hosts, when its test fails or panics, and by the next Sweep when
// its test process is killed.
func TestCleanup(t *testing.T) {
	if err := Requirements(); err != nil {
		t.Skip(err)
	}
	for _, mode := range []string{"fail", "panic", "kill"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), proctest.Timeout)
			defer cancel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTestbed$", "-test.v")
			cmd.Env = append(os.Environ(), helperEnv+"="+mode)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			p, err := proc.Start(cmd, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Kill()
			m, err := p.WaitLine(ctx, regexp.MustCompile(`^ready ([0-9]+)$`))
			if err != nil {
				t.Fatal(err)
			}
			inHost, _ := strconv.Atoi(m[1])
			prefix := "nb" + strconv.Itoa(p.PID())
			if mode == "kill" {
				p.Kill()
				if left := remains(ctx, t, prefix); len(left) == 0 {
					t.Error("a killed test process left nothing for Sweep to remove")
				}
				if err := Sweep(ctx); err != nil {
					t.Error(err)
				}
			} else if err := p.Wait(); err == nil {
				t.Errorf("the helper that should %s exited 0:\n%s", mode, p.Log())
			}
			if left := remains(ctx, t, prefix); len(left) > 0 {
				t.Errorf("%s remain:\n%s", left, p.Log())
			}
			if running(inHost) {
				t.Errorf("process %d, started in a host, is still running", inHost)
			}
		})
	}
}

// running reports whether the process pid exists and is not a zombie
// (which its new parent may not have reaped yet).
func running(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	end := bytes.LastIndexByte(data, ')')
	return end < 0 || !bytes.HasPrefix(data[end+1:], []byte(" Z"))
}
