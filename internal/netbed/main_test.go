package netbed

import (
	"os"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		proctest.RemoveBinary()
		os.Exit(code)
	}))
}
