package dirvolume

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// Flags for the larger measurements, off by default so that a plain
// go test stays small.
var (
	benchBlocks = flag.Int("dirvolume.index-blocks", 20000, "blocks in the volume BenchmarkIndex lists")
	benchVolume = flag.String("dirvolume.volume", "", "an existing volume for BenchmarkIndex (read-only) and TestStartupTime (writable) instead of a generated one")
	benchDir    = flag.String("dirvolume.dir", "", "where the generated volumes of benchmarks and TestStartupTime go (default: the system's temporary directory); they are removed after")
)

// generateVolume writes n block files into the volume at root as an
// earlier server would have left them: block i holds "block SEED I"
// (10 to 30 bytes) under its MD5, in its subdirectory. Files are
// written by a few goroutines at once, so a million takes seconds, not
// minutes.
func generateVolume(tb testing.TB, root, seed string, n int) {
	tb.Helper()
	workers := min(runtime.GOMAXPROCS(0)*2, 8)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := writeBlockFile(root, seed, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
}

// writeBlockFile writes block i of generateVolume.
func writeBlockFile(root, seed string, i int) error {
	data := append([]byte("block "+seed+" "), strconv.Itoa(i)...)
	sum := md5.Sum(data)
	hash := hex.EncodeToString(sum[:])
	p := filepath.Join(root, hash[:3], hash)
	err := os.WriteFile(p, data, 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(filepath.Dir(p), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		err = os.WriteFile(p, data, 0o644)
	}
	return err
}

// benchRoot makes a directory for a generated volume under -dirvolume.dir,
// removed when tb ends.
func benchRoot(tb testing.TB) string {
	tb.Helper()
	if *benchDir == "" {
		return tb.TempDir()
	}
	dir, err := os.MkdirTemp(*benchDir, "dirvolume-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
