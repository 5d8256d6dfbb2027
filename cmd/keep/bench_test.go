package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keepproject/keep/bench"
	"github.com/keepproject/keep/internal/proc/proctest"
)

// TestBenchQuick runs "keep bench --quick" with server processes and
// checks that the JSON report is complete, with a stored ratio of at
// least 1 for every put. (Exactly 1 is the client's business, not the
// benchmark's.)
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a benchmark of about 20 s")
	}
	bin := proctest.Binary(t)
	dir := t.TempDir()
	jsonFile := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := runBench(context.Background(), []string{"--quick", "--json", jsonFile, "--server-bin", bin, "--dir", dir}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("\n%s", stdout.String())
	for _, want := range []string{"put N=1", "get N=3", "small files", "stored/N×size", "web N=2 (keepweb, HTTP)", "mount N=2 (keepfs, FUSE)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q", want)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind in --dir: %v", left)
	}

	data, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	measurement := []string{"name", "replicas", "servers", "bytes", "seconds", "mb_per_s", "ceiling_mb_per_s",
		"ceiling_ratio", "client_cpu_s_per_gib", "server_cpu_s_per_gib", "total_cpu_s_per_gib", "peak_client_mib", "stored_ratio"}
	// check reports each missing or null field of obj; nullable fields
	// must be present but may be null.
	check := func(where string, obj any, fields []string, nullable ...string) {
		m, ok := obj.(map[string]any)
		if !ok {
			t.Errorf("%s: not an object: %v", where, obj)
			return
		}
		for _, f := range fields {
			v, ok := m[f]
			switch {
			case !ok:
				t.Errorf("%s: no field %q", where, f)
			case v == nil && !slices.Contains(nullable, f):
				t.Errorf("%s: %q is null", where, f)
			}
		}
	}
	check("report", r, []string{"date", "go_version", "cpu_model", "cores", "md5_mb_per_s_per_core", "md5_cpu_s_per_gib",
		"read_ceiling_mb_per_s", "servers", "file_bytes", "blocks_in_flight", "put", "get", "faults", "small_files", "read_in_place"})
	// checkPut also wants the stored ratio at least 1: Put succeeded,
	// so every block has at least N copies.
	checkPut := func(where string, obj any) {
		check(where, obj, measurement)
		m, _ := obj.(map[string]any)
		if s, ok := m["stored_ratio"].(float64); ok && s < 1 {
			t.Errorf("%s: stored ratio %.3f, want at least 1", where, s)
		}
	}
	for _, key := range []string{"put", "get"} {
		list, _ := r[key].([]any)
		if len(list) != 3 {
			t.Fatalf("%s: %d entries, want 3", key, len(list))
		}
		for i, m := range list {
			where := fmt.Sprintf("%s[%d]", key, i)
			if key == "get" {
				check(where, m, measurement, "stored_ratio")
				continue
			}
			checkPut(where, m)
		}
	}
	faults := r["faults"]
	check("faults", faults, []string{"healthy", "one_down", "one_down_ratio", "slow_rate_mb_per_s",
		"one_slow", "one_slow_ratio"})
	if f, ok := faults.(map[string]any); ok {
		for _, k := range []string{"healthy", "one_down", "one_slow"} {
			checkPut("faults."+k, f[k])
		}
		for k := range f {
			if strings.Contains(k, "hedge") {
				t.Errorf("faults: field %q", k)
			}
		}
	}
	small := r["small_files"]
	check("small_files", small, []string{"files", "file_bytes", "put", "files_per_s", "single_file", "ratio_to_single_file"})
	if s, ok := small.(map[string]any); ok {
		checkPut("small_files.put", s["put"])
		checkPut("small_files.single_file", s["single_file"])
		if n, _ := s["files"].(float64); n != 2000 {
			t.Errorf("small files: %v, want 2000 with --quick", n)
		}
	}
	checkReadInPlace(t, r["read_in_place"], check, measurement)
}

// checkReadInPlace checks the JSON of the reads in place: the get and
// web rows always, the mount row or else the reason it was skipped.
func checkReadInPlace(t *testing.T, obj any, check func(string, any, []string, ...string), measurement []string) {
	t.Helper()
	check("read_in_place", obj, []string{"output", "get", "web", "web_ratio_to_get", "mount", "mount_ratio_to_get"}, "mount", "mount_ratio_to_get")
	rip, _ := obj.(map[string]any)
	check("read_in_place.get", rip["get"], measurement, "stored_ratio")
	check("read_in_place.web", rip["web"], measurement, "stored_ratio")
	if rip["mount"] != nil {
		check("read_in_place.mount", rip["mount"], measurement, "stored_ratio")
	} else if why, _ := rip["mount_skipped"].(string); why == "" {
		t.Error("read_in_place: no mount row and no mount_skipped")
	}
}

// TestBenchCompareSync runs "keep bench --compare-sync" on a small file:
// the table appears twice, the second time from servers started with
// --no-sync, followed by sync/no-sync for every put and get; --json
// writes both runs and the comparison (it used to be ignored).
func TestBenchCompareSync(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a benchmark twice")
	}
	bin := proctest.Binary(t)
	jsonFile := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := runBench(context.Background(), []string{"--size", "4194304", "--small-files", "20", "--server-bin", bin, "--dir", t.TempDir(), "--compare-sync", "--json", jsonFile}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Logf("\n%s", out)
	// The main table's header (the reads in place have their own).
	if n := strings.Count(out, "total CPU  peak MiB  stored/N×size"); n != 2 {
		t.Errorf("%d tables with server CPU, want 2", n)
	}
	_, cmp, ok := strings.Cut(out, "sync over no-sync, measured in this run:")
	if !ok {
		t.Fatal("no comparison")
	}
	for _, row := range []string{"put N=1, 4 servers", "put N=2, 4 servers", "put N=3, 4 servers", "get N=2 data"} {
		if !strings.Contains(cmp, row) {
			t.Errorf("comparison lacks %q", row)
		}
	}
	checkComparisonJSON(t, jsonFile, "no-sync", "sync", "get N=2 data")

	var usage bytes.Buffer
	if err := runBench(context.Background(), []string{"--compare-sync", "--compare-s3"}, &usage, &usage); err == nil || !strings.Contains(usage.String(), "cannot be combined") {
		t.Errorf("--compare-sync --compare-s3: %v, %q", err, usage.String())
	}
}

// checkComparisonJSON checks the JSON file keep bench --json wrote for a
// comparison: both reports whole, named base and other, and the rate of
// each run both measured, among them run.
func checkComparisonJSON(t *testing.T, path, base, other, run string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("--json with a comparison: %v", err)
	}
	var c bench.Comparison
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if c.BaseName != base || c.OtherName != other || c.Base == nil || c.Other == nil {
		t.Fatalf("comparison JSON names %q over %q, want %q over %q; reports present: %v %v", c.OtherName, c.BaseName, other, base, c.Base != nil, c.Other != nil)
	}
	for _, r := range []*bench.Report{c.Base, c.Other} {
		if len(r.Put) != 3 || len(r.Get) != 3 || r.SmallFiles.Files == 0 {
			t.Errorf("a report in the comparison JSON is not whole: %d puts, %d gets, %d small files", len(r.Put), len(r.Get), r.SmallFiles.Files)
		}
	}
	found := false
	for _, r := range c.Rates {
		found = found || r.Name == run
		if r.BaseMBps <= 0 || r.Ratio <= 0 {
			t.Errorf("rate of %s in the comparison JSON: %+v", r.Name, r)
		}
	}
	if !found {
		t.Errorf("comparison JSON has no rate for %q: %+v", run, c.Rates)
	}
}
