package keepweb

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/keepproject/keep/manifest"
)

// activeTypes are content types a browser would run script in: served
// as downloads, so that a collection cannot run script on this origin
// (where other collections, and the token cookie, live).
var activeTypes = []string{"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml", "text/javascript", "application/javascript"}

// serveFile answers GET or HEAD for file f: its content, with Range,
// conditional requests, an ETag and a Content-Type.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, c *collection, f *manifest.File) {
	if r.Method == http.MethodGet {
		if !h.acquire(w) {
			return
		}
		defer h.release()
	}
	hdr := w.Header()
	hdr.Set("ETag", etag(f))
	hdr.Set("Cache-Control", "private, max-age=0, must-revalidate")
	ctype := contentType(f.Path)
	hdr.Set("Content-Type", ctype)
	base := path.Base(f.Path)
	if r.URL.Query().Get("disposition") == "attachment" || isActive(ctype) {
		hdr.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": base}))
	}
	rd := newSegReader(r.Context(), c.kc, f.Segments, h.ahead)
	defer rd.Close()
	http.ServeContent(directWriter{w}, r, base, time.Time{}, rd)
	if rd.err != nil && r.Context().Err() == nil {
		// The status and length were sent: the client sees the body
		// end early (the connection is closed), never wrong bytes.
		h.log.Error("download cut short", "collection", c.id, "path", f.Path, "err", rd.err)
	}
}

// contentType returns the type of a file by its extension, and
// application/octet-stream when the extension says nothing: the content
// is not sniffed, so that HEAD needs no block and answers as GET does.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// isActive reports whether ctype is one of activeTypes.
func isActive(ctype string) bool {
	t, _, _ := strings.Cut(ctype, ";")
	for _, a := range activeTypes {
		if strings.EqualFold(strings.TrimSpace(t), a) {
			return true
		}
	}
	return false
}

// etag returns the entity tag of f: a hash of its segments' bare
// locators and ranges, so the same content stored the same way has the
// same tag in every collection, whatever its signatures.
func etag(f *manifest.File) string {
	h := md5.New()
	for _, s := range f.Segments {
		fmt.Fprintf(h, "%s %d %d\n", s.Block.Bare(), s.Offset, s.Length)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + `"`
}

// directWriter lets http.ServeContent send a file's bytes straight from
// the blocks, a segment per write, instead of through its 32 KiB copy
// buffer: ServeContent copies with io.CopyN, which hands ReadFrom the
// segReader inside an io.LimitedReader.
type directWriter struct{ http.ResponseWriter }

// ReadFrom sends what src reads.
func (w directWriter) ReadFrom(src io.Reader) (int64, error) {
	if lr, ok := src.(*io.LimitedReader); ok {
		if sr, ok := lr.R.(*segReader); ok {
			n, err := sr.copyN(w.ResponseWriter, min(lr.N, sr.size-sr.pos))
			lr.N -= n
			return n, err
		}
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}
