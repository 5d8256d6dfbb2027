package transfer_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/transfer"
)

// TestPutFileShrunk: a file that shrinks between being listed and being
// read fails the put with a sentence naming it, for blocks sent from the
// file and for blocks packed from several files alike.
func TestPutFileShrunk(t *testing.T) {
	for _, files := range []map[string][]byte{
		{"big": random(4096)},                // whole blocks of one file
		{"a": random(100), "b": random(100)}, // one block of two files
	} {
		c := keeptest.NewCluster(t, 2)
		root := tree(t, files)
		in, _, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var victim string
		for name := range files {
			victim = filepath.Join(root, name)
		}
		if err := os.Truncate(victim, 10); err != nil {
			t.Fatal(err)
		}
		_, _, err = transfer.Put(context.Background(), client(t, c, 1), in, transfer.PutOptions{BlockSize: 1024})
		if err == nil || !strings.Contains(err.Error(), "shorter than when the put started") || !strings.Contains(err.Error(), victim) {
			t.Errorf("%d files, one shrunk: Put = %v", len(files), err)
		}
	}
}
