package keeptest

import "testing"

// HoldPort keeps the loopback port of a server the test has stopped from
// being taken by another listener (tests of other packages run in
// parallel) until the test ends, so that connections to it are still
// refused rather than answered by a stranger. Best effort: where the port
// cannot be held it does nothing.
func HoldPort(t testing.TB, port int) {
	if release := holdPort(port); release != nil {
		t.Cleanup(release)
	}
}
