package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
)

// TestE2EVersion: "keep version" and "keep --version" print the build
// (internal/version) and its Go version, help lists the command, and
// extra arguments are a usage error.
func TestE2EVersion(t *testing.T) {
	env := proctest.Env(t)
	out, stderr, err := proctest.Run(t, env, nil, "version")
	if err != nil || !strings.HasPrefix(out, "keep ") || !strings.HasSuffix(out, " "+runtime.Version()+"\n") || strings.Count(out, "\n") != 1 {
		// The test and the binary are built by the same go command.
		t.Errorf("keep version: %q %v\n%s", out, err, stderr)
	}
	if again, _, err := proctest.Run(t, env, nil, "--version"); err != nil || again != out {
		t.Errorf("keep --version: %q %v, want %q", again, err, out)
	}
	if help, _, _ := proctest.Run(t, env, nil, "help"); !strings.Contains(help, "\n  version ") {
		t.Errorf("keep help does not list version:\n%s", help)
	}
	if _, stderr, err := proctest.Run(t, env, nil, "version", "extra"); exitCode(err) != 2 || !strings.Contains(stderr, "takes no arguments") {
		t.Errorf("keep version extra: exit %d\n%s", exitCode(err), stderr)
	}
}
