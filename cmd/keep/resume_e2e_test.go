package main

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeRandom writes size pseudo-random bytes to a new file.
func writeRandom(t *testing.T, path string, size int64, seed uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	buf := make([]byte, 1<<20)
	for n := int64(0); n < size; n += int64(len(buf)) {
		r.Read(buf)
		w.Write(buf[:min(int64(len(buf)), size-n)])
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// An interrupted multi-GiB put, run again with the same arguments,
// sends only the blocks the first run did not store.
func TestE2EPutResume(t *testing.T) {
	if testing.Short() {
		t.Skip("2 GiB put skipped in -short mode")
	}
	c := newInCluster(t, 2)
	c.Discard(true) // keep only the hashes: 2 GiB × 2 would not fit in memory comfortably
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dir, 0o755)
	const size = 1 << 30
	writeRandom(t, filepath.Join(dir, "one"), size, 1)
	writeRandom(t, filepath.Join(dir, "two"), size, 2)
	const blocks = 2 * size / (64 << 20)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd, _, stderr := startKeep(t, c.env, nil, "put", "--services", c.services, "--replicas", "2", dir)
	// Interrupt once a third of the blocks have both their copies.
	if err := c.WaitRequests(ctx, 2*blocks/3); err != nil {
		t.Fatal(err)
	}
	cmd.Signal(os.Interrupt)
	if code := exitCode(cmd.Wait()); code != 130 {
		t.Fatalf("interrupted put exited %d\n%s", code, stderr)
	}
	first := len(c.PutRequests())

	text, errOut, err := c.keep(t, "put", "--replicas", "2", dir)
	if err != nil {
		t.Fatalf("second put: %v\n%s", err, errOut)
	}
	second := len(c.PutRequests()) - first
	t.Logf("first run: %d PUTs before the interrupt; second run: %d PUTs for %d blocks × 2", first, second, blocks)
	if second >= 2*blocks || second < 2 {
		t.Errorf("second run sent %d PUTs; want fewer than the %d of a full put", second, 2*blocks)
	}
	// Both files are in the manifest.
	for _, h := range []string{"one", "two"} {
		if !strings.Contains(text, ":"+h) {
			t.Errorf("manifest lacks %s:\n%s", h, text)
		}
	}
	// A third run sends nothing at all.
	before := len(c.PutRequests())
	if _, errOut, err := c.keep(t, "put", "--replicas", "2", dir); err != nil {
		t.Fatalf("third put: %v\n%s", err, errOut)
	}
	if n := len(c.PutRequests()) - before; n != 0 {
		t.Errorf("third run sent %d PUTs, want 0", n)
	}
	// --no-resume sends everything again; --no-cache neither uses nor
	// records anything.
	small := filepath.Join(t.TempDir(), "small")
	writeRandom(t, small, 1000, 3)
	for _, tt := range []struct {
		flag string
		puts int
	}{{"--no-cache", 2}, {"--no-cache", 2}, {"", 2}, {"", 0}, {"--no-resume", 2}} {
		before := len(c.PutRequests())
		args := []string{"put", "--replicas", "2", small}
		if tt.flag != "" {
			args = append(args, tt.flag)
		}
		if _, errOut, err := c.keep(t, args...); err != nil {
			t.Fatalf("put %s: %v\n%s", tt.flag, err, errOut)
		}
		if n := len(c.PutRequests()) - before; n != tt.puts {
			t.Errorf("put %s sent %d PUTs, want %d", tt.flag, n, tt.puts)
		}
	}
}
