package keepweb

import (
	"archive/zip"
	"bufio"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"time"

	"github.com/keepproject/keep/manifest"
)

// zipTime is the time of every entry: manifests have none, and a fixed
// one makes the same directory the same archive, byte for byte. (The
// zip format's dates start in 1980.)
var zipTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// serveZip answers GET or HEAD for directory dir with ?download=zip: a
// zip of everything under it, written as it is read. Entries are stored,
// not compressed (Keep data is mostly compressed already, and storing
// keeps the download at the speed of the servers); archive/zip writes
// each entry's CRC and sizes after its data, so nothing is buffered but
// the blocks in flight. All files are read as one stream, so that small
// files packed into one block cost one fetch of it. A read that fails
// half-way aborts the connection: the client is left with a truncated
// archive, which no unzip takes for a whole one.
func (h *Handler) serveZip(w http.ResponseWriter, r *http.Request, c *collection, dir string) {
	files, names, emptyDirs := c.tree.walk(dir)
	base := path.Base(dir)
	if dir == "" {
		base = c.id
	}
	if r.Method == http.MethodGet {
		if !h.acquire(w) {
			return
		}
		defer h.release()
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/zip")
	hdr.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": base + ".zip"}))
	hdr.Set("Cache-Control", "private, no-cache")
	if r.Method == http.MethodHead {
		return
	}
	if err := h.writeZip(r, c, w, files, names, emptyDirs); err != nil {
		if r.Context().Err() == nil {
			h.log.Error("zip download cut short", "collection", c.id, "dir", dir, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// writeZip writes the zip of files (named names) and emptyDirs to w.
func (h *Handler) writeZip(r *http.Request, c *collection, w io.Writer, files []*manifest.File, names, emptyDirs []string) error {
	var segs []manifest.Segment
	for _, f := range files {
		segs = append(segs, f.Segments...)
	}
	rd := newSegReader(r.Context(), c.kc, segs, h.ahead)
	defer rd.Close()
	// A buffer between the archive and the connection, so that the
	// small header writes do not each become a packet.
	bw := bufio.NewWriterSize(w, 64<<10)
	zw := zip.NewWriter(bw)
	for i, f := range files {
		fh := &zip.FileHeader{Name: names[i], Method: zip.Store, Modified: zipTime}
		fh.SetMode(0o644)
		ew, err := zw.CreateHeader(fh)
		if err != nil {
			return err
		}
		if n, err := rd.copyN(ew, f.Size()); err != nil {
			return fmt.Errorf("%s: after %d bytes: %w", f.Path, n, err)
		}
	}
	for _, d := range emptyDirs {
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: d, Modified: zipTime}); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
