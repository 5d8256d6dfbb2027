package keepweb

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/net/webdav"

	"github.com/keepproject/keep/manifest"
)

// errReadOnly is what every WebDAV write meets.
var errReadOnly = errors.New("the collection is read-only")

// davTime is the modification time WebDAV clients are shown: manifests
// have none, and a fixed one keeps their caches and syncs stable.
var davTime = time.Unix(0, 0).UTC()

// serveDAV answers a WebDAV PROPFIND in collection c.
func (h *Handler) serveDAV(w http.ResponseWriter, r *http.Request, req request, c *collection) {
	dav := &webdav.Handler{
		Prefix:     req.prefix,
		FileSystem: &davFS{c: c, ahead: h.ahead},
		LockSystem: webdav.NewMemLS(),
	}
	dav.ServeHTTP(w, r)
}

// davFS is a collection as a read-only webdav.FileSystem.
type davFS struct {
	c     *collection
	ahead int
}

var _ webdav.FileSystem = (*davFS)(nil)

// Mkdir refuses: the collection is read-only.
func (*davFS) Mkdir(context.Context, string, os.FileMode) error { return errReadOnly }

// RemoveAll refuses: the collection is read-only.
func (*davFS) RemoveAll(context.Context, string) error { return errReadOnly }

// Rename refuses: the collection is read-only.
func (*davFS) Rename(context.Context, string, string) error { return errReadOnly }

// Stat returns what name is.
func (d *davFS) Stat(_ context.Context, name string) (os.FileInfo, error) {
	return d.c.tree.stat(davPath(name))
}

// OpenFile opens name for reading; any other use is refused.
func (d *davFS) OpenFile(ctx context.Context, name string, flag int, _ os.FileMode) (webdav.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND) != 0 {
		return nil, errReadOnly
	}
	p := davPath(name)
	info, err := d.c.tree.stat(p)
	if err != nil {
		return nil, err
	}
	f := &davFile{info: info}
	if info.file != nil {
		f.segReader = newSegReader(ctx, d.c.kc, info.file.Segments, d.ahead)
	} else {
		for _, e := range d.c.tree.dirs[p] {
			f.entries = append(f.entries, entryInfo(path.Join(p, e.name), e))
		}
	}
	return f, nil
}

// davPath turns a WebDAV name ("/dir/file", cleaned by webdav) into a
// tree path ("dir/file").
func davPath(name string) string { return strings.Trim(path.Clean("/"+name), "/") }

// stat returns what p is in t.
func (t *tree) stat(p string) (*fileInfo, error) {
	if f, ok := t.files[p]; ok {
		return &fileInfo{name: path.Base(p), file: f}, nil
	}
	if _, ok := t.dirs[p]; ok {
		return &fileInfo{name: path.Base("/" + p)}, nil
	}
	return nil, os.ErrNotExist
}

// entryInfo returns the fileInfo of e, at path p.
func entryInfo(p string, e entry) *fileInfo {
	return &fileInfo{name: path.Base(p), file: e.file}
}

// davFile is an open file or directory. Its reader is nil for a
// directory.
type davFile struct {
	*segReader
	info    *fileInfo
	entries []fs.FileInfo
	read    int // entries returned by Readdir so far
}

// Close ends the reads in flight.
func (f *davFile) Close() error {
	if f.segReader != nil {
		return f.segReader.Close()
	}
	return nil
}

// Read reads a file; a directory has nothing to read.
func (f *davFile) Read(p []byte) (int, error) {
	if f.segReader == nil {
		return 0, errors.New("is a directory")
	}
	return f.segReader.Read(p)
}

// Seek moves in a file.
func (f *davFile) Seek(offset int64, whence int) (int64, error) {
	if f.segReader == nil {
		return 0, errors.New("is a directory")
	}
	return f.segReader.Seek(offset, whence)
}

// Write refuses: the collection is read-only.
func (*davFile) Write([]byte) (int, error) { return 0, errReadOnly }

// Stat returns what f is.
func (f *davFile) Stat() (os.FileInfo, error) { return f.info, nil }

// Readdir returns a directory's next count entries (all when count <=
// 0), as os.File.Readdir does.
func (f *davFile) Readdir(count int) ([]fs.FileInfo, error) {
	rest := f.entries[f.read:]
	if count <= 0 {
		f.read = len(f.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n := min(count, len(rest))
	f.read += n
	return rest[:n], nil
}

// fileInfo describes a file (file set) or a directory of a collection.
// It gives WebDAV its ETag and content type without reading any block.
type fileInfo struct {
	name string
	file *manifest.File
}

var (
	_ webdav.ETager       = (*fileInfo)(nil)
	_ webdav.ContentTyper = (*fileInfo)(nil)
)

// Name returns the base name.
func (i *fileInfo) Name() string { return i.name }

// Size returns a file's length, 0 for a directory.
func (i *fileInfo) Size() int64 {
	if i.file == nil {
		return 0
	}
	return i.file.Size()
}

// Mode returns read-only permissions, and the directory bit.
func (i *fileInfo) Mode() fs.FileMode {
	if i.file == nil {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

// ModTime returns davTime.
func (*fileInfo) ModTime() time.Time { return davTime }

// IsDir reports whether this is a directory.
func (i *fileInfo) IsDir() bool { return i.file == nil }

// Sys returns nil.
func (*fileInfo) Sys() any { return nil }

// ETag returns the file's entity tag, as GET sends it.
func (i *fileInfo) ETag(context.Context) (string, error) {
	if i.file == nil {
		return "", webdav.ErrNotImplemented
	}
	return etag(i.file), nil
}

// ContentType returns the type GET sends.
func (i *fileInfo) ContentType(context.Context) (string, error) {
	if i.file == nil {
		return "", webdav.ErrNotImplemented
	}
	return contentType(i.name), nil
}
