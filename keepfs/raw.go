package keepfs

import (
	"errors"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// rawFS answers the kernel's FUSE requests from the tree. It uses
// go-fuse's raw protocol layer, not its fs package, because that keeps
// an Inode of several hundred bytes for every entry the kernel has
// looked up: after find over 100,000 files, many times the size of the
// tree. Here a node's FUSE id is its index in the tree plus one (the
// root, node 0, is FUSE_ROOT_ID), so the kernel's lookups and forgets
// need no state at all. Only open files have some.
type rawFS struct {
	fuse.RawFileSystem // ENOSYS for what a read-only tree does not do
	m                  *Mount

	mu      sync.Mutex // protects the fields below
	handles map[uint64]*handle
	nextFh  uint64
}

func newRawFS(m *Mount) *rawFS {
	return &rawFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), m: m, handles: map[uint64]*handle{}}
}

// forever is how long the kernel may cache names and attributes:
// nothing in the tree ever changes.
const forever = 24 * time.Hour

func (r *rawFS) String() string { return "keep" }

// node returns the tree index of FUSE node id, if there is one.
func (r *rawFS) node(id uint64) (uint32, bool) {
	if id == 0 || id > uint64(len(r.m.tree.nodes)) {
		return 0, false
	}
	return uint32(id - 1), true
}

// entry fills out for node i.
func (r *rawFS) entry(i uint32, out *fuse.EntryOut) {
	out.NodeId = uint64(i) + 1
	out.SetEntryTimeout(forever)
	out.SetAttrTimeout(forever)
	r.m.attr(i, &out.Attr)
}

// Lookup finds a child by name.
func (r *rawFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	dir, ok := r.node(h.NodeId)
	switch {
	case !ok:
		return fuse.ENOENT
	case !r.m.tree.nodes[dir].isDir():
		return fuse.ENOTDIR
	}
	i, ok := r.m.tree.lookup(dir, name)
	if !ok {
		return fuse.ENOENT
	}
	r.entry(i, out)
	return fuse.OK
}

// Forget needs nothing: nodes are the tree's, for the mount's life.
func (r *rawFS) Forget(nodeid, nlookup uint64) {}

// GetAttr answers stat.
func (r *rawFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	i, ok := r.node(in.NodeId)
	if !ok {
		return fuse.ENOENT
	}
	out.SetTimeout(forever)
	r.m.attr(i, &out.Attr)
	return fuse.OK
}

// StatFs answers df: the tree's size, nothing free.
func (r *rawFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	out.Bsize, out.Frsize = 4096, 4096
	out.Blocks = uint64(r.m.size+4095) / 4096
	out.Files = uint64(len(r.m.tree.nodes))
	out.NameLen = 255
	return fuse.OK
}

// OpenDir needs no state: ReadDir's offset is an index.
func (r *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	i, ok := r.node(in.NodeId)
	switch {
	case !ok:
		return fuse.ENOENT
	case !r.m.tree.nodes[i].isDir():
		return fuse.ENOTDIR
	}
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR
	return fuse.OK
}

// ReleaseDir has nothing to release.
func (r *rawFS) ReleaseDir(in *fuse.ReleaseIn) {}

// ReadDir lists a directory from offset in.Offset: 0 is ".", 1 "..",
// 2+k the k-th child in name order.
func (r *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(in, out, false)
}

// ReadDirPlus is ReadDir with each child's attributes, as Lookup gives.
func (r *rawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(in, out, true)
}

func (r *rawFS) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	dir, ok := r.node(in.NodeId)
	if !ok {
		return fuse.ENOENT
	}
	n := r.m.tree.nodes[dir]
	for off := in.Offset; off < 2+uint64(n.count); off++ {
		e := fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Off: off + 1}
		child := n.first + uint32(off) - 2
		switch {
		case off == 0:
			e.Ino = in.NodeId
		case off == 1:
			e.Name = ".."
		default:
			e.Name, e.Ino = r.m.tree.name(child), uint64(child)+1
			if !r.m.tree.nodes[child].isDir() {
				e.Mode = syscall.S_IFREG
			}
		}
		if !plus {
			if !out.AddDirEntry(e) {
				break
			}
			continue
		}
		eo := out.AddDirLookupEntry(e)
		if eo == nil {
			break
		}
		if off >= 2 {
			r.entry(child, eo)
		}
	}
	return fuse.OK
}

// Open opens a file for reading; the kernel may keep its pages from one
// open to the next, as the content never changes.
func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	i, ok := r.node(in.NodeId)
	switch {
	case !ok:
		return fuse.ENOENT
	case r.m.tree.nodes[i].isDir():
		return fuse.EISDIR
	case in.Flags&syscall.O_ACCMODE != syscall.O_RDONLY || in.Flags&syscall.O_TRUNC != 0:
		return fuse.EROFS
	}
	h := newHandle(r.m, i)
	r.mu.Lock()
	r.nextFh++
	out.Fh = r.nextFh
	r.handles[out.Fh] = h
	r.mu.Unlock()
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

// Release forgets an open file.
func (r *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	r.mu.Lock()
	delete(r.handles, in.Fh)
	r.mu.Unlock()
}

// Read reads an open file.
func (r *rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	r.mu.Lock()
	h := r.handles[in.Fh]
	r.mu.Unlock()
	if h == nil {
		return nil, fuse.EBADF
	}
	n, err := h.read(cancel, buf, int64(in.Offset))
	switch {
	case errors.Is(err, errInterrupted):
		return nil, fuse.EINTR
	case err != nil:
		return nil, fuse.EIO
	}
	return fuse.ReadResultData(buf[:n]), fuse.OK
}

// attr fills out with node i's attributes.
func (m *Mount) attr(i uint32, out *fuse.Attr) {
	n := m.tree.nodes[i]
	out.Ino = uint64(i) + 1
	out.Nlink = 1
	out.Owner = fuse.Owner{Uid: m.uid, Gid: m.gid}
	out.Blksize = 4096
	t := uint64(m.started.Unix())
	out.Atime, out.Mtime, out.Ctime = t, t, t
	if n.isDir() {
		out.Mode = syscall.S_IFDIR | 0o555
		out.Size = 4096
		return
	}
	size := uint64(m.tree.size(i))
	out.Mode = syscall.S_IFREG | 0o444
	out.Size = size
	out.Blocks = (size + 511) / 512
}

// handle is an open file: its segments, where each starts in the file,
// and where a sequential reader would read next.
type handle struct {
	m      *Mount
	segs   []segment
	starts []int64
	size   int64

	mu   sync.Mutex // protects next
	next int64      // the end of the furthest read so far
}

func newHandle(m *Mount, i uint32) *handle {
	n := m.tree.nodes[i]
	segs := m.tree.segs[n.first : n.first+n.count]
	starts := make([]int64, len(segs))
	var pos int64
	for k, s := range segs {
		starts[k] = pos
		pos += int64(s.length)
	}
	return &handle{m: m, segs: segs, starts: starts, size: pos}
}

// seqSlack is how far a read may start from where the last one ended
// and still count as sequential: the kernel's readahead sends reads
// concurrently, so they may arrive a little out of order.
const seqSlack = 8 << 20

// read copies the file's bytes at off into dest and returns how many.
func (h *handle) read(cancel <-chan struct{}, dest []byte, off int64) (int, error) {
	if off >= h.size || len(dest) == 0 {
		return 0, nil
	}
	end := min(off+int64(len(dest)), h.size)
	first := sort.Search(len(h.starts), func(i int) bool { return h.starts[i]+int64(h.segs[i].length) > off })
	h.readahead(first, off, end)
	got := 0
	for i := first; off+int64(got) < end; i++ {
		n, err := h.copySegment(cancel, i, dest[got:end-off], off+int64(got))
		if err != nil {
			return 0, err
		}
		got += n
	}
	return got, nil
}

// copySegment copies segment i's bytes from file offset pos into dest.
func (h *handle) copySegment(cancel <-chan struct{}, i int, dest []byte, pos int64) (int, error) {
	s := h.segs[i]
	e, err := h.m.cache.get(cancel, s.block, h.m.tree.blocks[s.block].Size)
	if err != nil {
		return 0, err
	}
	defer h.m.cache.release(e)
	from := int64(s.offset) + pos - h.starts[i]
	to := int64(s.offset) + int64(s.length)
	if to > int64(len(e.data)) {
		return 0, errShortBlock
	}
	return copy(dest, e.data[from:to]), nil
}

var errShortBlock = errors.New("block shorter than the manifest says")

// readahead starts fetching the blocks after segment first's, for a
// reader that reads [off, end) right after where it last read.
func (h *handle) readahead(first int, off, end int64) {
	h.mu.Lock()
	seq := off >= h.next-seqSlack && off <= h.next+seqSlack
	h.next = max(h.next, end)
	h.mu.Unlock()
	if !seq || h.m.readahead == 0 {
		return
	}
	cur := h.segs[first].block
	ahead := 0
	for i := first + 1; i < len(h.segs) && ahead < h.m.readahead; i++ {
		b := h.segs[i].block
		if b == cur {
			continue
		}
		cur = b
		ahead++
		h.m.cache.prefetch(b, h.m.tree.blocks[b].Size)
	}
}
