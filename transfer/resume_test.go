package transfer_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

// The layout putFiles computes from sizes is the one the Packer makes
// reading the files: both puts give the same manifest.
func TestPutFilesMatchesPacker(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	kc := client(t, c, 1)
	files := map[string][]byte{"a": random(10), "b": nil, "c": random(3000), "d/e": random(1024), "d/f": random(1)}
	root := tree(t, files)
	in, _, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	laid, _, err := transfer.Put(context.Background(), kc, in, transfer.PutOptions{BlockSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	// The same inputs through the stream path: an input of unknown size
	// sends everything through the Packer.
	streamed := append([]transfer.Input(nil), in...)
	for i := range streamed {
		if !streamed[i].Dir {
			streamed[i].Size = -1
		}
	}
	packed, _, err := transfer.Put(context.Background(), kc, streamed, transfer.PutOptions{BlockSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if laid.Text() != packed.Text() {
		t.Errorf("layout:\n%s\npacker:\n%s", laid.Text(), packed.Text())
	}
}

// A put run again reads and sends only the blocks the first did not
// store; a changed file is read and sent again.
func TestPutResume(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	kc := client(t, c, 1)
	root := tree(t, map[string][]byte{"big": random(10 * 1024), "small": random(100)})
	cachePath := filepath.Join(t.TempDir(), "cache.json")
	put := func(noLookup bool) *manifest.Manifest {
		t.Helper()
		in, _, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cache, err := transfer.OpenResumeCache(cachePath)
		if err != nil {
			t.Fatal(err)
		}
		m, short, err := transfer.Put(context.Background(), kc, in, transfer.PutOptions{BlockSize: 1024, Resume: cache, NoLookup: noLookup})
		if err != nil || short != nil {
			t.Fatalf("Put: %v %v", err, short)
		}
		return m
	}
	first := put(false)
	puts := len(c.PutRequests())
	if puts != 11 {
		t.Fatalf("first put sent %d blocks, want 11", puts)
	}
	again := put(false)
	if n := len(c.PutRequests()) - puts; n != 0 || again.Text() != first.Text() {
		t.Errorf("second put sent %d blocks (want 0); same manifest: %v", n, again.Text() == first.Text())
	}
	// A block the servers lost is sent again.
	c.Server(0).Delete(first.Files[0].Segments[0].Block.Hash)
	put(false)
	if n := len(c.PutRequests()) - puts; n != 1 {
		t.Errorf("after a block was lost, %d sent, want 1", n)
	}
	puts = len(c.PutRequests())
	// Changing the small file (last in the layout) changes its block only.
	os.WriteFile(filepath.Join(root, "small"), random(100), 0o644)
	put(false)
	if n := len(c.PutRequests()) - puts; n != 1 {
		t.Errorf("after one file changed, %d blocks sent, want 1", n)
	}
	puts = len(c.PutRequests())
	put(true) // no lookup: everything sent, cache still written
	if n := len(c.PutRequests()) - puts; n != 11 {
		t.Errorf("without lookup, %d blocks sent, want 11", n)
	}
	data, _ := os.ReadFile(cachePath)
	if !bytes.Contains(data, []byte(`"version":1`)) {
		t.Errorf("cache file %q", data)
	}
}
