package reliability

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The on-disk layout of a keep server volume: a block is DIR/xyz/HASH,
// xyz the hash's first three hex digits; anything else in a shard
// directory (temporary files start with "tmp") is not a block. The root
// also holds the volume's uuid and lock files.

// volumeScan is what a volume directory holds.
type volumeScan struct {
	blocks map[string]string // hash -> path of DIR/xyz/HASH
	tmps   []string          // paths of files starting "tmp" in shard directories
	other  []string          // paths of anything else
}

// scanVolume lists a volume directory.
func scanVolume(dir string) (volumeScan, error) {
	v := volumeScan{blocks: map[string]string{}}
	subs, err := os.ReadDir(dir)
	if err != nil {
		return v, err
	}
	for _, sub := range subs {
		if n := sub.Name(); n == "keep-volume-uuid" || n == "keep-volume.lock" {
			continue
		}
		if !sub.IsDir() || len(sub.Name()) != 3 || !isHex(sub.Name()) {
			v.other = append(v.other, filepath.Join(dir, sub.Name()))
			continue
		}
		ents, err := os.ReadDir(filepath.Join(dir, sub.Name()))
		if err != nil {
			return v, err
		}
		for _, e := range ents {
			p := filepath.Join(dir, sub.Name(), e.Name())
			switch name := e.Name(); {
			case len(name) == 32 && isHex(name) && strings.HasPrefix(name, sub.Name()) && e.Type().IsRegular():
				v.blocks[name] = p
			case strings.HasPrefix(name, "tmp"):
				v.tmps = append(v.tmps, p)
			default:
				v.other = append(v.other, p)
			}
		}
	}
	return v, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// fileMD5 returns the MD5 of a file's content in hex.
func fileMD5(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkBlockFile returns an error unless the file at path holds content
// whose MD5 is hash.
func checkBlockFile(path, hash string) error {
	sum, err := fileMD5(path)
	if err != nil {
		return err
	}
	if sum != hash {
		return fmt.Errorf("%s holds data with MD5 %s", path, sum)
	}
	return nil
}

// blockPath is where a volume keeps a block.
func blockPath(dir, hash string) string { return filepath.Join(dir, hash[:3], hash) }

// holder is one volume holding a copy of a block.
type holder struct {
	server int
	mtime  time.Time // of the copy: when it was last written or touched
}

// String formats a holder for messages.
func (h holder) String() string {
	return fmt.Sprintf("server %d (written %s)", h.server, h.mtime.Format("15:04:05.000"))
}

// holders returns the volumes among dirs (indexed as servers) holding a
// copy of the block, and an error for any copy whose content does not
// match its name.
func holders(dirs []string, hash string) ([]holder, error) {
	var out []holder
	for i, d := range dirs {
		p := blockPath(d, hash)
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if err := checkBlockFile(p, hash); err != nil {
			return out, fmt.Errorf("server %d: %w", i, err)
		}
		out = append(out, holder{server: i, mtime: fi.ModTime()})
	}
	return out, nil
}

// removeBlock deletes every copy of a block from dirs, so that long
// runs do not fill the disk.
func removeBlock(dirs []string, hash string) {
	for _, d := range dirs {
		os.Remove(blockPath(d, hash))
	}
}
