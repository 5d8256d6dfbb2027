package dirvolume_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/internal/proc/proctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		proctest.RemoveBinary() // built by TestStartupTime, if run
		os.Exit(code)
	}))
}
