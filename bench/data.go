package bench

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"path/filepath"

	"github.com/keepproject/keep/locator"
)

// randomSource returns a fast generator of incompressible bytes with a
// fresh seed, so that no two benchmark runs store the same blocks.
func randomSource() *mrand.ChaCha8 {
	var seed [32]byte
	rand.Read(seed[:])
	return mrand.NewChaCha8(seed)
}

// writeRandomFile creates path holding size random bytes.
func writeRandomFile(path string, size int64, src *mrand.ChaCha8) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	buf := make([]byte, 4<<20)
	for size > 0 {
		n := int(min(int64(len(buf)), size))
		src.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

// writeSmallFiles creates dir holding count random files of size bytes
// each, named so that they sort in creation order.
func writeSmallFiles(dir string, count, size int, src *mrand.ChaCha8) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	buf := make([]byte, size)
	for i := range count {
		src.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// stamp makes every block of the file at path new to Keep by writing
// run and the block's index over the start of each block-sized piece:
// transfer.Put cuts a single file into blocks at those offsets.
// Servers that already hold a block may skip storing it again, which
// would flatter the next put and spoil its storage count.
func stamp(path string, size int64, run uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	var b [16]byte
	for off, i := int64(0), uint64(0); off < size; off, i = off+locator.MaxBlockSize, i+1 {
		binary.LittleEndian.PutUint64(b[:8], run)
		binary.LittleEndian.PutUint64(b[8:], i)
		n := min(int64(len(b)), size-off)
		if _, err := f.WriteAt(b[:n], off); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// stored is what the servers' volumes hold of a set of blocks.
type stored struct {
	blocks     int   // distinct non-empty blocks looked for
	blockBytes int64 // their total size
	bytes      int64 // the total size of every copy found
	minCopies  int   // the fewest servers holding any one block
	maxCopies  int   // the most servers holding any one block
}

// countStored looks for each block in every server's volume directory,
// where keepstore keeps a block as DIR/<first 3 hex digits of the
// hash>/<hash> (files being written have other names, so they do not
// count). It reports false when a server's directory is unknown. The
// empty block is skipped: it takes no space.
func countStored(servers []*Server, blocks []locator.Locator) (stored, bool, error) {
	if !volumesKnown(servers) {
		return stored{}, false, nil
	}
	var st stored
	seen := make(map[string]bool)
	for _, b := range blocks {
		if b.Size == 0 || len(b.Hash) < 3 || seen[b.Hash] {
			continue
		}
		seen[b.Hash] = true
		copies := 0
		for _, s := range servers {
			info, err := os.Lstat(filepath.Join(s.Dir, b.Hash[:3], b.Hash))
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue
			case err != nil:
				return stored{}, false, err
			case !info.Mode().IsRegular():
				continue
			}
			copies++
			st.bytes += info.Size()
		}
		if st.blocks == 0 || copies < st.minCopies {
			st.minCopies = copies
		}
		st.maxCopies = max(st.maxCopies, copies)
		st.blocks++
		st.blockBytes += b.Size
	}
	return st, true, nil
}

// copiesString describes the copies found, such as "8 blocks, 2 copies
// each" or "8 blocks, 2 to 3 copies".
func (st stored) copiesString() string {
	blocks := fmt.Sprintf("%d blocks", st.blocks)
	if st.blocks == 1 {
		blocks = "1 block"
	}
	switch {
	case st.minCopies != st.maxCopies:
		return fmt.Sprintf("%s, %d to %d copies", blocks, st.minCopies, st.maxCopies)
	case st.maxCopies == 1:
		return blocks + ", 1 copy each"
	}
	return fmt.Sprintf("%s, %d copies each", blocks, st.maxCopies)
}

// ratio returns the bytes stored over replicas × the blocks' size: 1 when
// every block is stored exactly replicas times.
func (st stored) ratio(replicas int) float64 {
	return ratio(float64(st.bytes), float64(replicas)*float64(st.blockBytes))
}
