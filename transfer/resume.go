package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/keepproject/keep/locator"
)

// ResumeCache remembers the blocks earlier puts stored, so that a put run
// again after an interruption neither reads nor sends them again (as
// arv-put's resume cache). A block is known by what it was cut from: the
// path, size and modification time of each file it holds bytes of, and
// where. Change any of them and the block is read and sent afresh.
// Its methods are safe for concurrent use.
type ResumeCache struct {
	path string

	mu     sync.Mutex // protects blocks and saving
	blocks map[string]string
}

type cacheFile struct {
	Version int               `json:"version"`
	Blocks  map[string]string `json:"blocks"` // block key -> locator
}

// OpenResumeCache reads the cache at path, or starts an empty one if
// there is none. A cache that cannot be parsed is started afresh: it
// only saves work.
func OpenResumeCache(path string) (*ResumeCache, error) {
	c := &ResumeCache{path: path, blocks: make(map[string]string)}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, err
	}
	var f cacheFile
	if json.Unmarshal(data, &f) == nil && f.Version == 1 && f.Blocks != nil {
		c.blocks = f.Blocks
	}
	return c, nil
}

// lookup returns the locator a block was stored under.
func (c *ResumeCache) lookup(key string) (locator.Locator, bool) {
	c.mu.Lock()
	s, ok := c.blocks[key]
	c.mu.Unlock()
	if !ok {
		return locator.Locator{}, false
	}
	l, err := locator.Parse(s)
	return l, err == nil
}

// record notes that the block was stored and saves the cache.
func (c *ResumeCache) record(key string, l locator.Locator) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocks[key] = l.String()
	return c.save()
}

// save writes the cache atomically. Callers hold mu.
func (c *ResumeCache) save() error {
	data, err := json.Marshal(cacheFile{Version: 1, Blocks: c.blocks})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".resume-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path)
}

// blockKey identifies block b of a layout of inputs by what it was cut
// from.
func blockKey(inputs []Input, b span, blockSize int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "block size %d\n", blockSize)
	for _, p := range b.pieces {
		in := inputs[p.input]
		abs, err := filepath.Abs(in.Src)
		if err != nil {
			abs = in.Src
		}
		h.Write([]byte(strconv.Quote(abs)))
		fmt.Fprintf(h, " %d %d %d %d\n", in.Size, in.ModTime.UnixNano(), p.offset, p.length)
	}
	return hex.EncodeToString(h.Sum(nil))
}
