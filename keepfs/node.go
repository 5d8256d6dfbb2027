package keepfs

import (
	"context"
	"errors"
	"sort"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// dirNode is a directory of the tree; go-fuse creates these (and
// fileNodes) only for what the kernel looks up.
type dirNode struct {
	fs.Inode
	m   *Mount
	idx uint32
}

// fileNode is a file of the tree.
type fileNode struct {
	fs.Inode
	m   *Mount
	idx uint32
}

var (
	_ fs.NodeLookuper  = (*dirNode)(nil)
	_ fs.NodeReaddirer = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeStatfser  = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.FileReader    = (*handle)(nil)
)

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

func (m *Mount) child(ctx context.Context, parent *fs.Inode, i uint32) *fs.Inode {
	mode := uint32(syscall.S_IFREG)
	var ops fs.InodeEmbedder = &fileNode{m: m, idx: i}
	if m.tree.nodes[i].isDir() {
		mode = syscall.S_IFDIR
		ops = &dirNode{m: m, idx: i}
	}
	return parent.NewInode(ctx, ops, fs.StableAttr{Mode: mode, Ino: uint64(i) + 1})
}

// Lookup finds a child by name.
func (d *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	i, ok := d.m.tree.lookup(d.idx, name)
	if !ok {
		return nil, syscall.ENOENT
	}
	d.m.attr(i, &out.Attr)
	return d.m.child(ctx, &d.Inode, i), 0
}

// Readdir lists the directory's children, in name order.
func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	n := d.m.tree.nodes[d.idx]
	return &dirStream{t: d.m.tree, next: n.first, end: n.first + n.count}, 0
}

// Getattr answers stat.
func (d *dirNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.m.attr(d.idx, &out.Attr)
	return 0
}

// Statfs answers df: the tree's size, nothing free.
func (d *dirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize, out.Frsize = 4096, 4096
	out.Blocks = uint64(d.m.size+4095) / 4096
	out.Files = uint64(len(d.m.tree.nodes))
	out.NameLen = 255
	return 0
}

// dirStream lists nodes next..end-1.
type dirStream struct {
	t         *Tree
	next, end uint32
}

func (s *dirStream) HasNext() bool { return s.next < s.end }
func (s *dirStream) Close()        {}

func (s *dirStream) Next() (fuse.DirEntry, syscall.Errno) {
	i := s.next
	s.next++
	mode := uint32(syscall.S_IFREG)
	if s.t.nodes[i].isDir() {
		mode = syscall.S_IFDIR
	}
	return fuse.DirEntry{Name: s.t.name(i), Mode: mode, Ino: uint64(i) + 1}, 0
}

// Getattr answers stat.
func (f *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	f.m.attr(f.idx, &out.Attr)
	return 0
}

// Open opens the file for reading; the kernel may keep its pages from
// one open to the next, as the content never changes.
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	n := f.m.tree.nodes[f.idx]
	segs := f.m.tree.segs[n.first : n.first+n.count]
	starts := make([]int64, len(segs))
	var pos int64
	for i, s := range segs {
		starts[i] = pos
		pos += int64(s.length)
	}
	return &handle{m: f.m, segs: segs, starts: starts, size: pos}, fuse.FOPEN_KEEP_CACHE, 0
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

// seqSlack is how far a read may start from where the last one ended
// and still count as sequential: the kernel's readahead sends reads
// concurrently, so they may arrive a little out of order.
const seqSlack = 8 << 20

// Read copies the file's bytes at off into dest.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= h.size || len(dest) == 0 {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), h.size)
	first := sort.Search(len(h.starts), func(i int) bool { return h.starts[i]+int64(h.segs[i].length) > off })
	h.readahead(first, off, end)
	got := 0
	for i := first; off+int64(got) < end; i++ {
		n, err := h.copySegment(ctx, i, dest[got:end-off], off+int64(got))
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, syscall.EINTR
			}
			return nil, syscall.EIO
		}
		got += n
	}
	return fuse.ReadResultData(dest[:got]), 0
}

// copySegment copies segment i's bytes from file offset pos into dest.
func (h *handle) copySegment(ctx context.Context, i int, dest []byte, pos int64) (int, error) {
	s := h.segs[i]
	e, err := h.m.cache.get(ctx, s.block, h.m.tree.blocks[s.block].Size)
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
