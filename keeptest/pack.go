package keeptest

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// PackFiles packs files (path → content, added in path order) and the
// empty directories dirs into blocks of blockSize, as keep put does,
// hands each block to store, and returns the manifest. Any error fails
// the test.
func PackFiles(t testing.TB, files map[string][]byte, dirs []string, blockSize int, store func(data []byte) (locator.Locator, error)) *manifest.Manifest {
	t.Helper()
	ctx := context.Background()
	var (
		mu   sync.Mutex
		locs []locator.Locator
	)
	p := manifest.NewPacker(blockSize, func(_ context.Context, i int, data []byte) error {
		l, err := store(data)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for len(locs) <= i {
			locs = append(locs, locator.Locator{})
		}
		locs[i] = l
		return nil
	})
	for _, path := range slices.Sorted(maps.Keys(files)) {
		if err := p.AddFile(ctx, path, bytes.NewReader(files[path])); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range dirs {
		if err := p.AddDir(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := p.Manifest(locs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
