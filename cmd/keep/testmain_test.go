package main

import (
	"os"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		// The binary built for the end-to-end tests.
		proctest.RemoveBinary()
		os.Exit(code)
	}))
}
