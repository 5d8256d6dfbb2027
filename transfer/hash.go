package transfer

import (
	"crypto/md5"
	"encoding/hex"
	"hash"
	"io"
	"os"
)

// streamHasher computes the MD5 of each block of a packed stream while
// the packer reads the files, in chunks small enough to still be in the
// CPU cache, so no block is read from memory a second time to hash it.
// It is used only by the goroutine that feeds the packer.
type streamHasher struct {
	blockSize int64
	pos       int64 // bytes of the stream seen so far
	h         hash.Hash
	sums      []string // MD5 of each complete block, by index
}

// hashChunk is the most read from a file at once, so that each chunk is
// hashed while still in cache.
const hashChunk = 1 << 20

// readHashed fills dst from f (the file at path) at off, in reads of at
// most hashChunk, each hashed into h while it is still in cache.
func readHashed(h hash.Hash, f *os.File, path string, dst []byte, off int64) error {
	for len(dst) > 0 {
		chunk := dst[:min(len(dst), hashChunk)]
		if err := readFull(f, path, chunk, off); err != nil {
			return err
		}
		h.Write(chunk)
		dst = dst[len(chunk):]
		off += int64(len(chunk))
	}
	return nil
}

func newStreamHasher(blockSize int) *streamHasher {
	return &streamHasher{blockSize: int64(blockSize), h: md5.New()}
}

// reader returns r wrapped so that everything read through it is hashed.
func (s *streamHasher) reader(r io.Reader) io.Reader { return &hashingReader{r: r, s: s} }

func (s *streamHasher) write(p []byte) {
	for len(p) > 0 {
		n := min(int64(len(p)), s.blockSize-s.pos%s.blockSize)
		s.h.Write(p[:n])
		s.pos += n
		p = p[n:]
		if s.pos%s.blockSize == 0 {
			s.sums = append(s.sums, hex.EncodeToString(s.h.Sum(nil)))
			s.h.Reset()
		}
	}
}

// sum returns the MD5 of block index of size n: a complete block's, or
// the partial last block's.
func (s *streamHasher) sum(index, n int) string {
	if index < len(s.sums) {
		return s.sums[index]
	}
	if index == len(s.sums) && s.pos%s.blockSize == int64(n) {
		return hex.EncodeToString(s.h.Sum(nil))
	}
	return "" // not seen through the hasher: keepclient hashes it
}

type hashingReader struct {
	r io.Reader
	s *streamHasher
}

func (h *hashingReader) Read(p []byte) (int, error) {
	if len(p) > hashChunk {
		p = p[:hashChunk]
	}
	n, err := h.r.Read(p)
	h.s.write(p[:n])
	return n, err
}
