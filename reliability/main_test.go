package reliability

import (
	"flag"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/internal/proc/proctest"
)

// long selects the long variants: more iterations, more data, more time.
var long = flag.Bool("long", false, "run the long variants of the reliability tests (minutes each)")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		proctest.RemoveBinary()
		os.Exit(code)
	}))
}
