package reliability

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
)

// blockSize is the size keep put cuts files into.
const blockSize = 64 << 20

// stamp writes v at the start of every blockSize chunk of data, so that
// each new stamp makes blocks no server has seen without generating new
// random data.
func stamp(data []byte, v uint64) {
	for off := 0; off+8 <= len(data); off += blockSize {
		binary.BigEndian.PutUint64(data[off:], v)
	}
}

// blockHashes returns the MD5 of each blockSize chunk of data: the
// blocks keep put stores for a file holding data alone.
func blockHashes(data []byte) []string {
	var out []string
	for off := 0; off < len(data); off += blockSize {
		sum := md5.Sum(data[off:min(off+blockSize, len(data))])
		out = append(out, hex.EncodeToString(sum[:]))
	}
	return out
}
