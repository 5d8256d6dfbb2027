package proc

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// helperEnv, when set, makes the test binary act as the child process of
// these tests (see helperMain) instead of running them.
const helperEnv = "PROC_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// helperMain is the child process: with mode "listen" it writes a fake
// address to the file after --addr-file, then prints "starting" and
// "listening", then waits for a signal; with "exit" it prints a line and
// exits with status 3 without listening; with "ignore-term" it prints
// "ready" and ignores SIGTERM.
func helperMain(mode string, args []string) int {
	switch mode {
	case "listen":
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--addr-file" {
				if err := os.WriteFile(args[i+1], []byte("0.0.0.0:4567\n"), 0o644); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
			}
		}
		fmt.Println("starting")
		fmt.Fprintln(os.Stderr, `msg="listening" addr=127.0.0.1:4567`)
		idle()
	case "exit":
		fmt.Fprintln(os.Stderr, "bind: address already in use")
		return 3
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		idle()
	}
	fmt.Fprintln(os.Stderr, "unknown mode", mode)
	return 2
}

// idle blocks until the process is killed. (An empty select would be
// reported as a deadlock.)
func idle() {
	for {
		time.Sleep(time.Hour)
	}
}
