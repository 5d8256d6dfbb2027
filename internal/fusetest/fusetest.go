// Package fusetest tells tests whether this process can mount a FUSE
// filesystem, for the tests of keep mount.
package fusetest

import (
	"os"
	"os/exec"
	"testing"
)

// Need skips the test, in one line, where this process cannot mount a
// FUSE filesystem (no /dev/fuse; not root and no fusermount3). With
// KEEP_TEST_FUSE set, as .ci/run sets it where /dev/fuse exists, it
// fails the test instead, so that CI never passes by skipping them.
func Need(t testing.TB) {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("KEEP_TEST_FUSE") != "" {
		skip = t.Fatalf
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		skip("FUSE mount tests need /dev/fuse: %v", err)
		return
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			skip("FUSE mount tests need root or fusermount3 (Debian package fuse3)")
		}
	}
}
