package balance

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/internal/synth"
	"github.com/keepproject/keep/keepclient"
)

// scaleBlocks is TestScale's size; 0 runs the small size CI runs.
var scaleBlocks = flag.Int("scale", 0, "TestScale: run keep balance and keep check on a synthetic cluster of `N` blocks and report their CPU and peak RSS (default: 20,000 blocks, counts checked, nothing reported)")

// scaleProfiles is where TestScale writes the commands' CPU profiles.
var scaleProfiles = flag.String("scaleprofile", "", "TestScale: write CPU profiles of keep balance and keep check to `dir`/balance.cpu and check.cpu")

// ciScale is TestScale's size without -scale: counts are checked, in
// a few seconds.
const ciScale = 20000

// TestScale runs the keep binary's balance (dry run, --gc) and check
// against a synthetic cluster (package synth: issue 20's four servers,
// 2 copies per block, 5% misplaced, 1% short, 2% garbage, manifests of
// 10,000 blocks) served in this process, checks the counts they print
// against the generator's, and logs each one's wall time, CPU time and
// peak RSS (from the child's rusage). With -scale N it runs N blocks:
//
//	go test ./balance -run TestScale -v -scale 1000000
//
// Nothing is asserted about time or memory.
func TestScale(t *testing.T) {
	n := *scaleBlocks
	if n == 0 {
		n = ciScale
	}
	if testing.Short() {
		t.Skip("runs the keep binary; skipped in -short mode")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "keep")
	if err := proctest.Build(bin); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	c, err := synth.New(synth.Issue20(n))
	if err != nil {
		t.Fatal(err)
	}
	want := c.Counts()
	manifests := filepath.Join(dir, "manifests")
	if err := os.Mkdir(manifests, 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := c.WriteManifests(manifests)
	if err != nil {
		t.Fatal(err)
	}
	const token = "scale-test-system-token"
	srv := c.Serve(token)
	defer srv.Close()
	svcFile := filepath.Join(dir, "services.json")
	tokenFile := filepath.Join(dir, "token")
	body, err := keepclient.MarshalServices(srv.Services)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(svcFile, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d blocks on %d servers, %d manifest files, generated in %v", n, len(srv.Services), files, time.Since(start).Round(time.Millisecond))
	env := proctest.Env(t)
	args := []string{"--services", svcFile, "--system-token-file", tokenFile, manifests}

	// keep balance --gc (a dry run: no --commit).
	profile := func(cmd string) []string {
		if *scaleProfiles == "" {
			return nil
		}
		return []string{"--cpuprofile", filepath.Join(*scaleProfiles, cmd+".cpu")}
	}
	out, r, err := runMeasured(bin, env, slices.Concat([]string{"balance", "--gc"}, profile("balance"), args)...)
	if err != nil {
		t.Fatalf("keep balance: %v\n%s", err, out)
	}
	summary := map[string]int{"ok": want.Placed, "misplaced": want.Misplaced, "under-replicated": want.Short, "unreferenced": want.Garbage, "over-replicated": 0, "lost": 0}
	checkSummary(t, "balance", out, summary)
	if m := regexp.MustCompile(`(?m)^(\d+) servers, (\d+) blocks referenced, (\d+) stored$`).FindStringSubmatch(out); m == nil || m[1] != "4" || m[2] != strconv.Itoa(want.Referenced) || m[3] != strconv.Itoa(want.Blocks) {
		t.Errorf("keep balance: servers and blocks %q, want 4, %d referenced, %d stored\n%s", m, want.Referenced, want.Blocks, out)
	}
	if m := regexp.MustCompile(`(?m)^dry run: (\d+) pulls and (\d+) trash items`).FindStringSubmatch(out); m == nil || m[1] != strconv.Itoa(want.Pulls) || m[2] != strconv.Itoa(want.Trash) {
		t.Errorf("keep balance: pulls and trash %q, want %d and %d\n%s", m, want.Pulls, want.Trash, out)
	}
	report(t, "balance", n, r)

	// keep check: one line per referenced block, then the summary; it
	// exits 1 as some blocks are short.
	out, r, err = runMeasured(bin, env, slices.Concat([]string{"check"}, profile("check"), args)...)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("keep check: %v, want exit status 1 (blocks are short)\n%s", err, out)
	}
	delete(summary, "unreferenced")
	checkSummary(t, "check", out, summary)
	if r.lines != want.Referenced+len(summary)+2 {
		t.Errorf("keep check: %d lines, want a header, %d blocks, an empty line and %d classes", r.lines, want.Referenced, len(summary))
	}
	report(t, "check", n, r)
}

// usage is what a child process took.
type usage struct {
	wall, cpu time.Duration
	peakRSS   int64 // bytes
	lines     int   // of standard output
}

// runMeasured runs bin with args to its end and returns the end of its
// output (standard output, then error) and its usage.
func runMeasured(bin string, env []string, args ...string) (string, usage, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stdout := &tailWriter{keep: 8 << 10}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	u := usage{wall: time.Since(start), lines: stdout.lines}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.peakRSS = ru.Maxrss << 10 // KiB on Linux
	}
	return stdout.String() + stderr.String(), u, err
}

// tailWriter keeps about the last keep bytes written, and counts lines.
type tailWriter struct {
	keep  int
	buf   []byte
	lines int
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.lines += bytes.Count(p, []byte{'\n'})
	w.buf = append(w.buf, p...)
	if len(w.buf) > 2*w.keep {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.keep:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return string(w.buf) }

var summaryLine = regexp.MustCompile(`(?m)^([a-z-]+):\s+(\d+) blocks\s+\d+ bytes$`)

// checkSummary checks the block counts of the summary in out.
func checkSummary(t *testing.T, cmd, out string, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, m := range summaryLine.FindAllStringSubmatch(out, -1) {
		got[m[1]], _ = strconv.Atoi(m[2])
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("keep %s: summary %v, want %v\n%s", cmd, got, want, out)
	}
}

// report logs a row of docs/performance.md's Scale table.
func report(t *testing.T, cmd string, n int, u usage) {
	t.Helper()
	t.Logf("| %s | %d | %.1f | %.1f | %.0f | %.0f | %.2f GB | %.0f |", cmd, n,
		u.wall.Seconds(), u.cpu.Seconds(), float64(n)/u.cpu.Seconds(), float64(n)/u.wall.Seconds(),
		float64(u.peakRSS)/1e9, float64(u.peakRSS)/float64(n))
}
