package dirvolume

import (
	"flag"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
)

var (
	startupBlocks = flag.Int("dirvolume.startup-blocks", 0, "blocks in the volume TestStartupTime starts keep server on; 0 skips it")
	startupRuns   = flag.Int("dirvolume.startup-runs", 3, "how many times TestStartupTime starts keep server")
)

// TestStartupTime measures, on a generated volume of
// -dirvolume.startup-blocks blocks (in -dirvolume.dir if set), or on the
// existing volume -dirvolume.volume (which it opens writable), how long
// the keep binary's server takes from its start to its "listening" line,
// and how long the scan a Directory starts at Open (the count of blocks
// and bytes, and the removal of temporary files) takes to end, in this
// process, with nothing else using the volume. It asserts only that the
// server starts and the scan counts every block; the figures are logged:
//
//	go test ./keepstore/dirvolume -run TestStartupTime -v -dirvolume.startup-blocks 1000000 -dirvolume.dir /dev/shm
//
// Without either flag it is skipped.
func TestStartupTime(t *testing.T) {
	root, want := *benchVolume, int64(-1)
	switch {
	case root != "":
		t.Logf("using the volume %s", root)
	case *startupBlocks > 0:
		root, want = benchRoot(t), int64(*startupBlocks)
		start := time.Now()
		generateVolume(t, root, "startup", *startupBlocks)
		t.Logf("generated %d blocks in %s in %.1f s", *startupBlocks, root, time.Since(start).Seconds())
	default:
		t.Skip("measures keep server's start on a big volume: set -dirvolume.startup-blocks or -dirvolume.volume")
	}
	env := proctest.Env(t)
	proctest.Binary(t) // built before the clock starts
	for run := 1; run <= *startupRuns; run++ {
		start := time.Now()
		p, _ := proctest.Listen(t, env, "keep server listening", "server", "--listen", "127.0.0.1:0", "--volume", root)
		listening := time.Since(start)
		if err := p.Stop(proctest.Timeout); err != nil {
			t.Logf("keep server exited: %v", err)
		}

		start = time.Now()
		d, err := Open(root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		opened := time.Since(start)
		<-d.ScanEnded()
		scanned := time.Since(start)
		st := d.ScanStatus()
		d.Close()
		if st.State != "done" || want >= 0 && st.Blocks != want {
			t.Errorf("scan %+v, want done with %d blocks", st, want)
		}
		t.Logf("run %d: keep server listening after %.3f s; in this process Open returned after %.3f s, the scan was done after %.2f s (%.0f blocks/s)",
			run, listening.Seconds(), opened.Seconds(), scanned.Seconds(), float64(st.Blocks)/scanned.Seconds())
	}
}
