package reliability

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// long selects the long variants: more iterations, more data, more time.
var long = flag.Bool("long", false, "run the long variants of the reliability tests (minutes each)")

// keepBin is the keep binary built by TestMain; "" in -short mode.
var keepBin string

func TestMain(m *testing.M) {
	flag.Parse()
	var dir string
	if !testing.Short() {
		var err error
		dir, err = os.MkdirTemp("", "keep-reliability-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		keepBin = filepath.Join(dir, "keep")
		// Built without -race even when the tests run with it: the
		// servers are the subject, and the race detector would make
		// them several times slower without checking anything more
		// than their own package tests already do.
		out, err := exec.Command("go", "build", "-o", keepBin, "github.com/keepproject/keep/cmd/keep").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if dir != "" {
			os.RemoveAll(dir)
		}
		os.Exit(code)
	}))
}

// needBinary skips the test in -short mode, where no binary is built.
func needBinary(t *testing.T) {
	t.Helper()
	if keepBin == "" {
		t.Skip("reliability tests run real processes; skipped in -short mode")
	}
}
