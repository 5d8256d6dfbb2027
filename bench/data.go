package bench

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
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

// storedBytes returns the total size of the regular files under the
// servers' volume directories, or false when any directory is unknown.
func storedBytes(servers []*Server) (int64, bool, error) {
	var total int64
	for _, s := range servers {
		if s.Dir == "" {
			return 0, false, nil
		}
		err := filepath.WalkDir(s.Dir, func(_ string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
			return nil
		})
		if err != nil {
			return 0, false, err
		}
	}
	return total, true, nil
}
