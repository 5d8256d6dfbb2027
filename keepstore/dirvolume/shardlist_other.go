//go:build !linux

package dirvolume

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keepproject/keep/keepstore"
)

// shardLister lists block subdirectories (see the Linux one, which
// reads them faster). It is for one goroutine at a time.
type shardLister struct {
	blocks []keepstore.BlockInfo // the listing returned
	temps  []string              // the temporary files seen by the last list
}

// list returns the blocks of subdirectory shard of root whose hash
// starts with prefix, sorted by hash; the slice is valid until the next
// call. A subdirectory that does not exist has none, provided root
// does. workers is ignored.
func (l *shardLister) list(root, shard, prefix string, _ int) ([]keepstore.BlockInfo, error) {
	ents, err := os.ReadDir(filepath.Join(root, shard))
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(root); err != nil {
			return nil, err
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.blocks, l.temps = l.blocks[:0], l.temps[:0]
	for _, e := range ents { // sorted by name, hence by hash
		name := e.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			l.temps = append(l.temps, name)
			continue
		}
		if !isHash(name) || name[:3] != shard || !strings.HasPrefix(name, prefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue // removed meanwhile, or not a block
		}
		l.blocks = append(l.blocks, keepstore.BlockInfo{Hash: name, Size: fi.Size(), Mtime: fi.ModTime()})
	}
	return l.blocks, nil
}
