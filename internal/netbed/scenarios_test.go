package netbed

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/bytesize"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// The benchmark's settings (docs/netbed.md); the defaults keep CI
// short.
var (
	scenarioSize = flag.String("netbed.size", "32MiB", "size of the file each scenario puts and gets")
	scenarioRuns = flag.Int("netbed.runs", 1, "runs of each scenario")
	scenarioRate = flag.Int64("netbed.rate", 200, "R, the link rate of the scenarios, in Mbit/s")
	scenarioCut  = flag.Duration("netbed.cut", 3*time.Second, "how long the cut scenario cuts a server off (or until the transfer ends); docs/netbed.md's runs used 10s")
	putFlags     = flag.String("netbed.put-flags", "", "more flags for keep put, space-separated (such as --blocks-in-flight=8)")
	getFlags     = flag.String("netbed.get-flags", "", "more flags for keep get, space-separated")
)

// Replicas and servers of the scenarios.
const (
	scenarioN       = 2
	scenarioServers = 5
)

// A scenario is one arrangement of links, with or without a fault.
type scenario struct {
	name string
	// client and victim are the rates of the client's link and of one
	// server's link, as multiples of R; the other servers have R.
	client, victim float64
	// cut cuts the victim's link off a third of the way through each
	// transfer, for -netbed.cut or until the transfer ends.
	cut bool
	// rtt, if set, is added to every round trip between the client and
	// the servers by a Delay forwarder on the client's host per server.
	rtt time.Duration
}

var scenarios = []scenario{
	{name: "all R", client: 1, victim: 1},
	{name: "client 4R", client: 4, victim: 1},
	{name: "one server R/10", client: 1, victim: 0.1},
	{name: "one server cut", client: 1, victim: 1, cut: true},
	{name: "20 ms RTT", client: 1, victim: 1, rtt: 20 * time.Millisecond},
}

// A result is one timed transfer of a scenario.
type result struct {
	scenario, op string
	run          int
	bytes        int64
	seconds      float64
	limit        float64 // bytes per second
	cpu          float64 // the client process's CPU seconds
	use          string  // how busy the servers' links were
	copies       string  // after the put
	note         string  // what the fault did
	load         string  // 1-minute load average before and after
}

// TestScenarios puts a file at N=2 from a client host to 5 server
// hosts, and gets it back, over links of R (200 Mbit/s) with the
// changes of each scenario, and reports MB/s beside the physical limit
// of the links and the copies stored. Nothing is asserted of the rates:
// the machine may be busy. The data must come back whole and every
// block must have N copies.
func TestScenarios(t *testing.T) {
	size, err := bytesize.Parse(*scenarioSize)
	if err != nil || size <= 0 {
		t.Fatalf("-netbed.size %q: want a positive size", *scenarioSize)
	}
	if err := Requirements(); err != nil {
		t.Skip(err)
	}
	bin, env := KeepBinary(t), proctest.Env(t)
	dir := tmpfsDir(t)
	src := filepath.Join(dir, "data")
	blocks, err := writeData(src, size)
	if err != nil {
		t.Fatal(err)
	}
	var results []result
	for _, sc := range scenarios {
		for run := 1; run <= *scenarioRuns; run++ {
			t.Run(fmt.Sprintf("%s/%d", sc.name, run), func(t *testing.T) {
				sr := scenarioRun{sc: sc, run: run, bin: bin, env: env, src: src, size: size, blocks: blocks, r: *scenarioRate * Mbit}
				results = append(results, sr.do(t, filepath.Join(dir, "run"))...)
			})
		}
	}
	t.Logf("R = %d Mbit/s, %s, N = %d, %d servers, %s, put flags %q, get flags %q\n%s", *scenarioRate, bytesize.Format(size), scenarioN, scenarioServers, bin, *putFlags, *getFlags, table(results))
}

// tmpfsDir returns a new directory in /dev/shm (memory, as the volumes
// of the measurements), else in the test's temporary directory,
// removed when t ends.
func tmpfsDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "netbed-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeData writes size random bytes to path and returns the hashes of
// its 64 MiB pieces: the blocks keep put makes of it.
func writeData(path string, size int64) ([]string, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	rnd := rand.NewChaCha8([32]byte{21})
	var hashes []string
	for left := size; left > 0; {
		n := min(left, locator.MaxBlockSize)
		h := md5.New()
		if _, err := io.CopyN(io.MultiWriter(f, h), rnd, n); err != nil {
			f.Close()
			return nil, err
		}
		hashes = append(hashes, hex.EncodeToString(h.Sum(nil)))
		left -= n
	}
	return hashes, f.Close()
}

// table formats results as a Markdown table.
func table(results []result) string {
	var b strings.Builder
	b.WriteString("| scenario | op | run | MB/s | limit MB/s | fraction | client CPU s | copies | fault | load before → after |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		rate := float64(r.bytes) / r.seconds
		fmt.Fprintf(&b, "| %s | %s | %d | %.1f | %.1f | %.2f | %.1f | %s | %s | %s |\n", r.scenario, r.op, r.run, rate/1e6, r.limit/1e6, rate/r.limit, r.cpu, r.copies, r.note, r.load)
	}
	return b.String()
}

// loadavg returns the 1-minute load average.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data) + " ?")[0]
}

// serviceUUID names server i. The probe order comes from it.
func serviceUUID(i int) string { return fmt.Sprintf("zzzzz-bi6l4-%015d", i) }

// victimIndex returns the server that comes first in the probe order of
// most of blocks (the earliest such block deciding ties): the one whose
// slow or cut link matters most.
func victimIndex(blocks []string) int {
	svcs := make([]keepclient.Service, scenarioServers)
	index := make(map[string]int)
	for i := range svcs {
		svcs[i] = keepclient.Service{UUID: serviceUUID(i)}
		index[svcs[i].UUID] = i
	}
	count := make([]int, scenarioServers)
	best := -1
	for _, h := range blocks {
		i := index[keepclient.ProbeOrder(h, svcs)[0].UUID]
		count[i]++
		if best < 0 || count[i] > count[best] {
			best = i
		}
	}
	return max(best, 0)
}

// readVictim returns the server a reader tries first (the first in
// probe order of those holding a copy) for most of blocks, the
// earliest such block deciding ties.
func readVictim(servers []*KeepServer, blocks []locator.Locator) int {
	svcs := make([]keepclient.Service, len(servers))
	for i, s := range servers {
		svcs[i] = s.Service
	}
	count := make([]int, len(servers))
	best := 0
	for _, b := range blocks {
		for _, svc := range keepclient.ProbeOrder(b.Hash, svcs) {
			i := slices.IndexFunc(servers, func(s *KeepServer) bool { return s.Service.UUID == svc.UUID })
			if _, err := os.Stat(filepath.Join(servers[i].Volume, b.Hash[:3], b.Hash)); err != nil {
				continue
			}
			count[i]++
			if count[i] > count[best] {
				best = i
			}
			break
		}
	}
	return best
}

// offPlace returns how many of blocks are not held by exactly the
// first N servers of their probe order: where the put's lag
// replacements moved them, and balance would move them back.
func offPlace(servers []*KeepServer, blocks []locator.Locator) int {
	svcs := make([]keepclient.Service, len(servers))
	for i, s := range servers {
		svcs[i] = s.Service
	}
	off := 0
	seen := make(map[string]bool)
	for _, b := range blocks {
		if b.Size == 0 || seen[b.Hash] {
			continue
		}
		seen[b.Hash] = true
		for i, svc := range keepclient.ProbeOrder(b.Hash, svcs) {
			j := slices.IndexFunc(servers, func(s *KeepServer) bool { return s.Service.UUID == svc.UUID })
			_, err := os.Stat(filepath.Join(servers[j].Volume, b.Hash[:3], b.Hash))
			if (err == nil) != (i < scenarioN) {
				off++
				break
			}
		}
	}
	return off
}

// sameFile reports whether the files a and b have the same contents.
func sameFile(a, b string) (bool, error) {
	var sums [2][]byte
	for i, path := range []string{a, b} {
		f, err := os.Open(path)
		if err != nil {
			return false, err
		}
		h := md5.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return false, err
		}
		sums[i] = h.Sum(nil)
	}
	return bytes.Equal(sums[0], sums[1]), nil
}

// parseManifest parses the manifest keep put printed.
func parseManifest(text string) ([]locator.Locator, error) {
	m, err := manifest.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("keep put printed %q: %w", text, err)
	}
	return m.Blocks(), nil
}
