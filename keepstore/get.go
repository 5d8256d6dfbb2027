package keepstore

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"
)

// errChecksum means a stored copy does not match its hash.
var errChecksum = errors.New("checksum mismatch in stored data")

// errClientGone means writing the response failed: the client left.
type errClientGone struct{ err error }

func (e errClientGone) Error() string { return "writing response: " + e.err.Error() }

// handleRead serves GET and HEAD of a block. Volumes are tried in
// rendezvous order, falling back to the next only while nothing has been
// sent. The MD5 is checked as the block streams out; on a mismatch the
// last chunk is withheld and the connection cut, so the client sees a
// short body rather than bad data. HEAD reads and checks the whole block
// too, and reports a mismatch as 502.
func (s *Server) handleRead(w *response, r *http.Request, path, _ string) {
	loc, ok := parseLocator(w, path)
	if !ok {
		return
	}

	head := r.Method == http.MethodHead
	var (
		corruptSize int64 = -1
		readErrs    []error
	)
	for _, m := range rendezvous(loc.Hash, s.mounts) {
		sent, size, err := sendBlock(r.Context(), w, m, loc.Hash, head, r.TLS == nil)
		if err == nil {
			return
		}
		var gone errClientGone
		switch {
		case errors.As(err, &gone):
			w.err = err
			return
		case sent:
			// Headers and part of the body are out: the status can no
			// longer change, so cut the connection short.
			w.err = fmt.Errorf("volume %s: %w", m.id, err)
			if errors.Is(err, errChecksum) {
				s.quarantine(r.Context(), m, loc.Hash)
			}
			s.logError(w, r, slog.LevelError, "block read failed after response started", err,
				slog.String("volume", m.id), slog.String("hash", loc.Hash))
			abort(w)
		case errors.Is(err, ErrNotFound):
		case errors.Is(err, errChecksum):
			corruptSize = size
			s.logError(w, r, slog.LevelError, "stored block is corrupt", err,
				slog.String("volume", m.id), slog.String("hash", loc.Hash))
			s.quarantine(r.Context(), m, loc.Hash)
		default:
			readErrs = append(readErrs, fmt.Errorf("volume %s: %w", m.id, err))
		}
	}
	switch {
	case corruptSize >= 0 && head:
		w.fail(http.StatusBadGateway, errChecksum.Error(), errChecksum)
	case corruptSize >= 0:
		// As Arvados keepstore does: promise the stored size, then send
		// nothing, so the client sees a short body.
		w.err = errChecksum
		w.Header().Set("Content-Length", strconv.FormatInt(corruptSize, 10))
		w.WriteHeader(http.StatusOK)
		abort(w)
	case len(readErrs) > 0:
		// A volume failing to read (a disk error, an object store out
		// of reach) is a passing condition as far as the client can
		// tell: 503 with Retry-After, so that it tries elsewhere.
		w.fail(http.StatusServiceUnavailable, "volume unavailable: error reading block", errors.Join(readErrs...))
	default:
		w.fail(http.StatusNotFound, "Not Found", nil)
	}
}

// abort flushes what has been written and closes the connection without
// completing the response.
func abort(w *response) {
	http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler)
}

// sendBlock streams m's copy of the block to w (for HEAD, only reads and
// checks it). It returns whether anything was sent, the stored size, and
// why it failed. Each chunk is sent as soon as it is read except the
// last, which waits for the whole block to be checked, so a bad copy
// never goes out whole.
//
// With plain (not TLS) connections, a chunk of a copy that is a file is
// sent from the file (sendfile) once it has been read and hashed, rather
// than written from the buffer it was read into: the kernel hands the
// page-cache pages to the socket, one copy of every byte fewer.
func sendBlock(ctx context.Context, w *response, m *mount, hash string, head, plain bool) (sent bool, size int64, err error) {
	rc, size, err := m.vol.Open(ctx, hash)
	if err != nil {
		return false, 0, err
	}
	defer rc.Close()
	file, _ := rc.(*os.File)
	if !plain {
		file = nil
	}
	buf := getBuf()
	defer putBuf(buf)
	sum := md5.New()
	start := func() {
		h := w.Header()
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		sent = true
	}
	var total int64
	for {
		chunk := (*buf)[:min(int64(len(*buf)), size-total)]
		n, err := io.ReadFull(rc, chunk)
		sum.Write(chunk[:n])
		total += int64(n)
		if err != nil {
			return sent, size, fmt.Errorf("reading block: %w", err)
		}
		last := total == size
		if last && hex.EncodeToString(sum.Sum(nil)) != hash {
			return sent, size, errChecksum
		}
		if head {
			if last {
				start()
				break
			}
			continue
		}
		if !sent {
			start()
		}
		if err := sendChunk(w, chunk, file); err != nil {
			return true, size, err
		}
		if last {
			break
		}
	}
	return sent, size, nil
}

// sendChunk sends chunk, just read from file (if not nil) and checked,
// to w: from the file when it can, else from the buffer.
func sendChunk(w *response, chunk []byte, file *os.File) error {
	if file != nil {
		if _, err := file.Seek(-int64(len(chunk)), io.SeekCurrent); err == nil {
			n, err := io.Copy(w, &io.LimitedReader{R: file, N: int64(len(chunk))})
			switch {
			case err != nil:
				return errClientGone{err}
			case n != int64(len(chunk)):
				return fmt.Errorf("reading block: %w", io.ErrUnexpectedEOF)
			}
			return nil
		}
	}
	if _, err := w.Write(chunk); err != nil {
		return errClientGone{err}
	}
	return nil
}

// quarantine moves m's copy of the block, found to fail its hash, to the
// trash, so that indexes stop listing it and balancing replaces it; it
// stays restorable until the trash lifetime ends. It checks the copy
// again first, and trashes it only if it is unchanged since, so that a
// copy just repaired by an upload stays.
func (s *Server) quarantine(ctx context.Context, m *mount, hash string) {
	if m.readOnly {
		return
	}
	ctx = context.WithoutCancel(ctx) // the client may be gone; the copy is still bad
	st, err := m.vol.Stat(ctx, hash)
	if err != nil || verifyCopy(ctx, m, hash) == nil {
		return
	}
	s.metrics.corrupt.Inc()
	if err := m.vol.Trash(ctx, hash, st.Mtime, s.trashDeadline(time.Now())); err != nil {
		s.log.Error("moving corrupt copy to the trash", slog.String("volume", m.id), slog.String("hash", hash), slog.String("error", err.Error()))
		return
	}
	s.log.Warn("moved corrupt copy to the trash", slog.String("volume", m.id), slog.String("hash", hash))
}
