package main

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
)

// TestStaticBinary: keep built with CGO_ENABLED=0, as docs/deploy.md
// says to build the binary copied to every host, is static: its ELF
// file names no program interpreter (the dynamic loader) and no shared
// libraries, so it runs whatever the host's libc. It fails if anything
// in the tree comes to need cgo. .ci/run builds that binary and passes
// it in KEEP_TEST_STATIC_BINARY; without it the test builds its own.
func TestStaticBinary(t *testing.T) {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		t.Skip("not an ELF system")
	}
	bin := os.Getenv("KEEP_TEST_STATIC_BINARY")
	if bin == "" {
		if testing.Short() {
			t.Skip("builds a binary; skipped in -short mode")
		}
		bin = filepath.Join(t.TempDir(), "keep")
		if err := proctest.Build(bin, "CGO_ENABLED=0"); err != nil {
			t.Fatal(err)
		}
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	cgo := ""
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			cgo = s.Value
		}
	}
	if cgo != "0" {
		t.Errorf("%s was built with CGO_ENABLED=%q, want 0", bin, cgo)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter: it is dynamically linked", bin)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) != 0 {
		t.Errorf("%s needs shared libraries %q (%v)", bin, libs, err)
	}
}
