package keepstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keepproject/keep/keepstore/dirvolume"
)

// listFiles returns every file under root, relative to it.
func listFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			if rel != dirvolume.LockFileName && rel != dirvolume.UUIDFileName {
				out = append(out, rel)
			}
		}
		return nil
	})
	return out
}
