package dirvolume

import (
	"io"
	"os"
)

// copyChunks copies r to dst through buf in writes of buf's size, each
// filled before it is written (the last may be shorter), and returns
// the bytes written. A socket read returns what has arrived, often
// 64 KiB or less, and page-cache writes that small cost up to twice the
// CPU per byte. claim is called with the size of each read as it
// arrives, so that room is claimed for the body received, not just for
// what has been written; its error stops the copy. io.EOF from r is
// success; any other error stops the copy and is returned.
func copyChunks(dst io.Writer, r io.Reader, buf []byte, claim func(int64) error) (int64, error) {
	var written int64
	for {
		n, rerr := fill(r, buf, claim)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return written, err
			}
			written += int64(n)
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// fill reads from r until buf is full or r fails, claiming room for
// what each read returns, and returns the bytes read and the error that
// stopped it (r's io.EOF at the end).
func fill(r io.Reader, buf []byte, claim func(int64) error) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		if m > 0 {
			if cerr := claim(int64(m)); cerr != nil {
				return 0, cerr
			}
		}
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// writebackFile is a new block file whose writeback to disk starts as
// soon as each chunk is written, so that the disk works while the rest
// of the body arrives and the sync at the end has little left to wait
// for. (Put at 2 replicas on 4 servers sharing one disk: 147–164 MB/s
// against 142–151 with all of the writeback left to the sync.)
type writebackFile struct {
	f   *os.File
	off int64 // bytes written so far
}

func (w *writebackFile) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if n > 0 {
		startWriteback(w.f, w.off, int64(n))
		w.off += int64(n)
	}
	return n, err
}
