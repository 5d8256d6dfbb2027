package keepfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keepproject/keep/keeptest"
)

// testFiles returns files of several shapes: empty, small ones sharing
// a block, ones spanning blocks, in nested directories.
func testFiles(blockSize int) (map[string][]byte, []string) {
	files := map[string][]byte{
		"empty":              {},
		"a.txt":              []byte("hello\n"),
		"dir/b.bin":          randomBytes(1, 3*blockSize+17),
		"dir/sub/c.bin":      randomBytes(2, blockSize),
		"dir/sub/d e\\f.txt": []byte("odd name"),
	}
	for i := range 20 {
		files[fmt.Sprintf("many/f%02d", i)] = randomBytes(uint64(100+i), 100*i)
	}
	return files, []string{"emptydir", "dir/sub/emptytoo"}
}

func TestReadEveryFile(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	files, dirs := testFiles(1 << 16)
	m := packFiles(t, c, files, dirs, 1<<16, 2)
	var b TreeBuilder
	if err := b.Add("", m); err != nil {
		t.Fatal(err)
	}
	_, dir := mountTree(t, b.Tree(), Options{Client: newClient(t, c, false)})
	checkFiles(t, dir, files, dirs)
	// Read again: from the cache and the kernel's pages.
	got, err := os.ReadFile(filepath.Join(dir, "dir/b.bin"))
	if err != nil || !bytes.Equal(got, files["dir/b.bin"]) {
		t.Errorf("second read: %v", err)
	}
}
