package keepclient

import (
	"fmt"
	"io"
	"net"
	"os"
)

// blockSource is the content of a block being written: bytes in memory,
// or a range of a file (PutFile), read again by each upload.
type blockSource struct {
	data []byte   // the block, unless file is set
	file *os.File // else the block is file[off, off+size)
	off  int64
	size int
}

func (s *blockSource) len() int {
	if s.file == nil {
		return len(s.data)
	}
	return s.size
}

// readAt fills p with the block's bytes from at.
func (s *blockSource) readAt(p []byte, at int) error {
	if s.file == nil {
		copy(p, s.data[at:])
		return nil
	}
	n, err := s.file.ReadAt(p, s.off+int64(at))
	if n < len(p) {
		if err == io.EOF || err == nil {
			return errShrunk(s.file)
		}
		return fmt.Errorf("reading %s: %w", s.file.Name(), err)
	}
	return nil
}

// errShrunk says f ended before the block it was to hold.
func errShrunk(f *os.File) error {
	return fmt.Errorf("%s is shorter than when the put started; it changed while being stored", f.Name())
}

// sendTo writes the n bytes at at to w: from memory, straight from the
// file to the socket (sendfile) when w is a TCP connection, or else read
// through scratch.
func (s *blockSource) sendTo(w io.Writer, at, n int, scratch *[]byte) error {
	if s.file == nil {
		_, err := w.Write(s.data[at : at+n])
		return err
	}
	if c, ok := w.(*net.TCPConn); ok {
		return sendFile(c, s.file, s.off+int64(at), n)
	}
	if *scratch == nil {
		*scratch = make([]byte, sendChunk)
	}
	p := (*scratch)[:n]
	if err := s.readAt(p, at); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}
