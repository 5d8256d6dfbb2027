// Package version says which build of keep is running, for start-up
// logs, health answers and `keep version`.
package version

import (
	"runtime/debug"
	"strings"
)

// String describes the running build: the module version when built
// from a tagged module, else the VCS revision (12 hex digits, "+dirty"
// when the tree had changes) and its commit time, else "devel"; always
// followed by the Go version.
func String() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return describe(bi)
}

func describe(bi *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
		if rev := settings["vcs.revision"]; rev != "" {
			v = rev[:min(len(rev), 12)]
			if settings["vcs.modified"] == "true" {
				v += "+dirty"
			}
			if t := settings["vcs.time"]; t != "" {
				v += " (" + t + ")"
			}
		}
	}
	return strings.TrimSpace(v + " " + bi.GoVersion)
}
