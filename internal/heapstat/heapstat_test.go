package heapstat

import (
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The peak covers what was live while sampling, and stop ends the
// sampler (goleak checks).
func TestPeak(t *testing.T) {
	before := Live()
	stop := Peak()
	buf := make([]byte, 64<<20)
	buf[len(buf)-1] = 1
	peak := stop()
	runtime.KeepAlive(buf)
	if peak < before+64<<20 {
		t.Errorf("peak %d, want at least %d (live before) + 64 MiB", peak, before)
	}
}
