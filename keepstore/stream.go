package keepstore

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/keepproject/keep/locator"
)

// bufSize is the size of the buffers blocks are streamed through: big
// enough that a 64 MiB block takes few system calls, small enough that
// many concurrent requests cost little memory.
const bufSize = 1 << 20

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, bufSize)
	return &b
}}

func getBuf() *[]byte  { return bufPool.Get().(*[]byte) }
func putBuf(b *[]byte) { bufPool.Put(b) }

// writerOnly and readerOnly hide ReadFrom and WriteTo so that
// io.CopyBuffer uses the pooled buffer instead of allocating its own.
type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

// Errors a checkedReader returns; the PUT handler maps them to statuses.
var (
	errHashMismatch = errors.New("hash mismatch")
	errTooLarge     = fmt.Errorf("block larger than %d bytes", locator.MaxBlockSize)
	errLength       = errors.New("body length does not match Content-Length or size hint")
)

// bodyError is a failure to read the request body itself (client hung
// up, body shorter than Content-Length, ...).
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// checkedReader passes r through, hashing it, and instead of io.EOF
// returns an error if the content is not exactly size bytes (when size >=
// 0), exceeds maxSize, or does not hash to want. A volume writing
// from it therefore aborts rather than commits a bad block.
type checkedReader struct {
	r     io.Reader
	want  string
	size  int64 // expected length, or -1
	limit int64
	md5   hash.Hash
	n     int64 // bytes read so far
	reads int   // Read calls so far: nonzero means the body was touched
	done  bool  // content complete and verified
	err   error // sticky failure
}

func newCheckedReader(r io.Reader, want string, size, maxSize int64) *checkedReader {
	limit := maxSize
	if size >= 0 {
		limit = size
	}
	return &checkedReader{r: r, want: want, size: size, limit: limit, md5: md5.New()}
}

func (c *checkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, io.EOF
	}
	c.reads++
	// Read at most one byte past the limit: enough to notice excess.
	if room := c.limit - c.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		if c.size >= 0 {
			c.err = fmt.Errorf("%w: body is longer than %d bytes", errLength, c.size)
		} else {
			c.err = errTooLarge
		}
		return 0, c.err
	}
	c.md5.Write(p[:n])
	switch {
	case err == io.EOF:
		if c.size >= 0 && c.n != c.size {
			c.err = fmt.Errorf("%w: body is %d bytes, want %d", errLength, c.n, c.size)
		} else if got := hex.EncodeToString(c.md5.Sum(nil)); got != c.want {
			c.err = fmt.Errorf("%w: body has MD5 %s, locator says %s", errHashMismatch, got, c.want)
		} else {
			c.done = true
			return n, io.EOF
		}
		return n, c.err
	case err != nil:
		c.err = &bodyError{err}
		return n, c.err
	}
	return n, nil
}

// finish reads to the end of the content, so that a short, long or
// mismatched body is reported even if the consumer stopped early.
func (c *checkedReader) finish() error {
	if c.done {
		return nil
	}
	if c.err != nil {
		return c.err
	}
	buf := getBuf()
	defer putBuf(buf)
	_, err := io.CopyBuffer(writerOnly{io.Discard}, readerOnly{c}, *buf)
	return err
}
