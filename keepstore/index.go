package keepstore

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// handleIndex lists the blocks whose hash starts with prefix (from the
// path, or ?prefix=), one "hash+size mtime_ns" line each, sorted by hash,
// one line per block even if several volumes hold it (the newest mtime
// wins). An extra "\n" ends a complete listing; a listing cut short by
// an error lacks it.
//
// A single volume's listing is passed on as it comes. Several volumes
// are read one shard at a time (see shardLen) and merged, so memory
// stays bounded by a shard rather than the whole server.
func (s *Server) handleIndex(w *response, r *http.Request, prefix, _ string) {
	s.writeIndex(w, r, prefix, s.mounts)
}

// writeIndex lists the blocks of mounts whose hash starts with prefix
// (or ?prefix=), as handleIndex describes.
func (s *Server) writeIndex(w *response, r *http.Request, prefix string, mounts []*mount) {
	if prefix == "" {
		prefix = r.URL.Query().Get("prefix")
	}
	if len(prefix) > 32 || !isLowerHex(prefix) {
		w.fail(http.StatusBadRequest, "invalid index prefix", nil)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	iw := &indexWriter{w: w, bw: bufio.NewWriterSize(w, 64<<10)}
	// Not the request's context, which net/http cancels when the client
	// half-closes its connection: a client really gone fails the writes.
	ctx := context.WithoutCancel(r.Context())
	if len(mounts) == 1 {
		// One volume lists each block once, in order: its listing goes
		// out as it comes, in no memory (a bucket of 10M blocks would
		// otherwise be held whole).
		m := mounts[0]
		if err := m.vol.Index(ctx, prefix, iw.line); err != nil {
			iw.fail(m, err)
			return
		}
		iw.end()
		return
	}
	var entries []BlockInfo
	for _, shard := range indexShards(prefix, shardLen(mounts)) {
		entries = entries[:0]
		for _, m := range mounts {
			err := m.vol.Index(ctx, shard, func(b BlockInfo) error {
				entries = append(entries, b)
				return nil
			})
			if err != nil {
				iw.fail(m, err)
				return
			}
		}
		slices.SortFunc(entries, func(a, b BlockInfo) int {
			if c := strings.Compare(a.Hash, b.Hash); c != 0 {
				return c
			}
			return b.Mtime.Compare(a.Mtime) // newest first
		})
		for i, e := range entries {
			if i > 0 && entries[i-1].Hash == e.Hash {
				continue
			}
			if err := iw.line(e); err != nil {
				return
			}
		}
	}
	iw.end()
}

// indexWriter writes an index's lines.
type indexWriter struct {
	w    *response
	bw   *bufio.Writer
	buf  []byte
	sent bool // a line was written
}

// line writes "hash+size mtime_ns".
func (iw *indexWriter) line(b BlockInfo) error {
	iw.buf = append(iw.buf[:0], b.Hash...)
	iw.buf = append(iw.buf, '+')
	iw.buf = strconv.AppendInt(iw.buf, b.Size, 10)
	iw.buf = append(iw.buf, ' ')
	iw.buf = strconv.AppendInt(iw.buf, b.Mtime.UnixNano(), 10)
	iw.buf = append(iw.buf, '\n')
	iw.sent = true
	if _, err := iw.bw.Write(iw.buf); err != nil {
		iw.w.err = err
		return err
	}
	return nil
}

// fail ends a listing that mount m could not give: a 500 if nothing is
// out yet; else the listing stops without the final blank line, which
// tells the client it is incomplete.
func (iw *indexWriter) fail(m *mount, err error) {
	if iw.w.err != nil {
		return // the client is gone
	}
	if iw.w.status == 0 && !iw.sent {
		iw.w.fail(http.StatusInternalServerError, "error listing volume "+m.id, err)
		return
	}
	iw.w.err = err
	iw.bw.Flush()
}

// end writes the blank line that ends a complete listing.
func (iw *indexWriter) end() {
	iw.bw.WriteString("\n")
	iw.bw.Flush()
}

// shardLen returns the prefix length the listing of mounts is read in:
// the shortest IndexShardLen of their volumes when every one has one
// (three hex digits, a Directory's subdirectories); the whole listing at
// once for a single volume without one, whose Index is sorted and needs
// no merge; else one hex digit, so that an object store is asked 16
// times rather than 4096, holding a sixteenth of the listing in memory
// at a time.
func shardLen(mounts []*mount) int {
	n := -1
	for _, m := range mounts {
		sh, ok := m.vol.(IndexSharder)
		if !ok {
			if len(mounts) == 1 {
				return 0
			}
			return 1
		}
		if l := sh.IndexShardLen(); n < 0 || l < n {
			n = l
		}
	}
	return max(n, 0)
}

// indexShards splits a listing into prefixes of at least n hex digits.
func indexShards(prefix string, n int) []string {
	if len(prefix) >= n {
		return []string{prefix}
	}
	const hexDigits = "0123456789abcdef"
	shards := []string{prefix}
	for len(shards[0]) < n {
		next := make([]string, 0, len(shards)*16)
		for _, s := range shards {
			for _, c := range hexDigits {
				next = append(next, s+string(c))
			}
		}
		shards = next
	}
	return shards
}

// isLowerHex reports whether s is lowercase hex digits only.
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
