package fusetest

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Need passes here only where /dev/fuse opens; otherwise it skipped or
// failed the test before the check below runs.
func TestNeed(t *testing.T) {
	Need(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Errorf("Need passed without /dev/fuse: %v", err)
	}
}
