package manifest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/keepproject/keep/locator"
)

// FlushFunc is called by a Packer with each block it fills, in order:
// index counts blocks from 0 and data holds the block's content. It takes
// ownership of data; see Packer.
type FlushFunc func(ctx context.Context, index int, data []byte) error

// Packer writes files into one byte stream cut into blocks of a fixed size,
// so that many small files share a block, and builds the manifest of the
// result. Use it in three steps: AddFile (and AddDir) for each entry in
// order, Close, then Manifest with the locators the blocks were stored
// under.
//
// Buffer ownership: each full block, and at Close the last partial one, is
// passed to the flush function as a slice of length at most the block size
// and capacity exactly the block size. The flush function owns that slice
// from then on; the Packer never reads or writes it again, whether flush
// succeeds or fails. It may keep the slice after returning, e.g. to upload
// it from another goroutine, and should hand it back with Release once done
// so the Packer fills it with a later block instead of allocating a new
// one. A flush function that blocks also blocks AddFile, which is how a
// caller bounds the blocks in flight: with at most N blocks unreleased,
// the Packer holds N+1 block buffers in all.
//
// AddFile, AddDir, Close and Manifest must be called from one goroutine at
// a time; Release may be called from any goroutine at any time.
type Packer struct {
	blockSize int
	flush     FlushFunc

	buf   []byte  // block being filled, nil when none
	sizes []int64 // sizes of the blocks flushed so far, by index
	files []packedFile
	dirs  []string
	tree  tree

	closed bool
	err    error // first failure after which the packed data is unusable

	mu   sync.Mutex // protects free
	free [][]byte   // released buffers, length 0, capacity blockSize
}

type packedFile struct {
	path string
	segs []packedSegment
}

type packedSegment struct {
	block          int
	offset, length int64
}

// NewPacker returns a Packer that cuts blocks of blockSize bytes and hands
// each to flush. A blockSize of 0 or less means locator.MaxBlockSize;
// NewPacker panics if blockSize is larger than that or flush is nil.
func NewPacker(blockSize int, flush FlushFunc) *Packer {
	if blockSize <= 0 {
		blockSize = locator.MaxBlockSize
	}
	if blockSize > locator.MaxBlockSize {
		panic(fmt.Sprintf("manifest.NewPacker: block size %d exceeds the maximum %d", blockSize, locator.MaxBlockSize))
	}
	if flush == nil {
		panic("manifest.NewPacker: nil flush function")
	}
	return &Packer{blockSize: blockSize, flush: flush, tree: newTree()}
}

// AddFile reads r to EOF and appends its content as the file at path,
// calling flush for every block it fills. An empty r gives an empty file.
//
// An invalid or duplicate path, or one clashing with a directory, is
// rejected before anything is read and leaves the Packer usable. A read,
// flush or context error after reading started leaves a partial file in
// the stream, so it is returned again by every later call.
func (p *Packer) AddFile(ctx context.Context, path string, r io.Reader) error {
	const op = "adding a file"
	if err := p.usable(op); err != nil {
		return err
	}
	if err := checkPath(path); err != nil {
		return fmt.Errorf("%s: path %v", op, err)
	}
	if p.tree.files[path] {
		return fmt.Errorf("%s: %q added twice", op, path)
	}
	if err := p.tree.addFile(path); err != nil {
		return fmt.Errorf("%s: %v", op, err)
	}

	f := packedFile{path: path}
	for {
		if err := ctx.Err(); err != nil {
			return p.fail(fmt.Errorf("%s: %q: %w", op, path, err))
		}
		if p.buf == nil {
			p.buf = p.getBuffer()
		}
		off := len(p.buf)
		n, rerr := r.Read(p.buf[off:cap(p.buf)])
		if n > 0 {
			p.buf = p.buf[:off+n]
			f.segs = appendPackedSegment(f.segs, packedSegment{block: len(p.sizes), offset: int64(off), length: int64(n)})
			if len(p.buf) == cap(p.buf) {
				if err := p.flushBuffer(ctx, op); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return p.fail(fmt.Errorf("%s: reading %q: %w", op, path, rerr))
		}
	}
	p.files = append(p.files, f)
	return nil
}

// AddDir records the directory at path, so that it appears in the
// manifest even if no file is added beneath it.
func (p *Packer) AddDir(path string) error {
	const op = "adding a directory"
	if err := p.usable(op); err != nil {
		return err
	}
	if err := checkPath(path); err != nil {
		return fmt.Errorf("%s: path %v", op, err)
	}
	if slices.Contains(p.dirs, path) {
		return nil
	}
	if err := p.tree.addDir(path); err != nil {
		return fmt.Errorf("%s: %v", op, err)
	}
	p.dirs = append(p.dirs, path)
	return nil
}

// Close flushes the last, partial block if there is one. Only Manifest and
// Release may be called after Close; calling Close again does nothing.
func (p *Packer) Close(ctx context.Context) error {
	const op = "finishing the last block"
	if p.err != nil {
		return p.err
	}
	if p.closed {
		return nil
	}
	p.closed = true
	if p.buf == nil {
		return nil
	}
	if len(p.buf) == 0 {
		p.Release(p.buf)
		p.buf = nil
		return nil
	}
	return p.flushBuffer(ctx, op)
}

// Manifest returns the manifest of the packed files, in the order they
// were added, given the locator each block was stored under: locs[i] for
// the block flush got with index i, typically as signed by the server.
// A locator without a size gets the block's; one with a different size is
// an error. Manifest must come after a successful Close.
func (p *Packer) Manifest(locs []locator.Locator) (*Manifest, error) {
	const op = "building the manifest"
	if p.err != nil {
		return nil, p.err
	}
	if !p.closed {
		return nil, fmt.Errorf("%s: called before Close", op)
	}
	if len(locs) != len(p.sizes) {
		return nil, fmt.Errorf("%s: got %d locators for %d blocks", op, len(locs), len(p.sizes))
	}
	blocks := make([]locator.Locator, len(locs))
	for i, l := range locs {
		if err := locator.ParseHash(l.Hash); err != nil {
			return nil, fmt.Errorf("%s: block %d: %w", op, i, err)
		}
		switch {
		case l.Size < 0:
			l.Size = p.sizes[i]
		case l.Size != p.sizes[i]:
			return nil, fmt.Errorf("%s: block %d: locator %s has size %d, block has %d bytes", op, i, l, l.Size, p.sizes[i])
		}
		blocks[i] = l
	}
	m := &Manifest{Files: make([]File, len(p.files)), Dirs: slices.Clone(p.dirs)}
	for i, pf := range p.files {
		f := File{Path: pf.path}
		if len(pf.segs) > 0 {
			f.Segments = make([]Segment, len(pf.segs))
			for j, s := range pf.segs {
				f.Segments[j] = Segment{Block: blocks[s.block], Offset: s.offset, Length: s.length}
			}
		}
		m.Files[i] = f
	}
	return m, nil
}

// Release hands back a buffer the flush function received, for reuse by a
// later block. Call it at most once per buffer, and do not touch the
// buffer afterwards. Buffers of another capacity are ignored.
func (p *Packer) Release(buf []byte) {
	if cap(buf) != p.blockSize {
		return
	}
	p.mu.Lock()
	p.free = append(p.free, buf[:0])
	p.mu.Unlock()
}

func (p *Packer) usable(op string) error {
	if p.err != nil {
		return p.err
	}
	if p.closed {
		return fmt.Errorf("%s: packer is closed", op)
	}
	return nil
}

func (p *Packer) fail(err error) error {
	p.err = err
	return err
}

func (p *Packer) getBuffer() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return b
	}
	return make([]byte, 0, p.blockSize)
}

// flushBuffer hands the current buffer to flush as the next block.
func (p *Packer) flushBuffer(ctx context.Context, op string) error {
	index := len(p.sizes)
	data := p.buf
	p.buf = nil
	p.sizes = append(p.sizes, int64(len(data)))
	if err := p.flush(ctx, index, data); err != nil {
		return p.fail(fmt.Errorf("%s: flushing block %d: %w", op, index, err))
	}
	return nil
}

func appendPackedSegment(segs []packedSegment, s packedSegment) []packedSegment {
	if n := len(segs); n > 0 {
		last := &segs[n-1]
		if last.block == s.block && last.offset+last.length == s.offset {
			last.length += s.length
			return segs
		}
	}
	return append(segs, s)
}
