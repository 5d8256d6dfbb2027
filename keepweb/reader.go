package keepweb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// segReader reads a sequence of segments (one file's, or several files'
// one after the other) as one stream, with Seek. It fetches whole blocks
// (keepclient verifies each before returning it) and keeps up to ahead
// blocks in flight after the one being read, so a sequential read never
// waits for a server between blocks; it holds at most ahead+1 blocks.
// A run of consecutive segments in one block costs one fetch. Its
// methods are for one goroutine; Close stops the fetches in flight and
// waits for them.
type segReader struct {
	ctx    context.Context
	kc     *keepclient.Client
	segs   []manifest.Segment
	ends   []int64 // ends[i]: the stream offset just after segment i
	group  []int   // group[i]: the run of one block segment i is in
	blocks []locator.Locator
	size   int64
	ahead  int
	pos    int64
	err    error // the last read's failure, for the log

	fetches map[int]*blockFetch // by group
	free    [][]byte            // buffers of finished blocks, for reuse
	wg      sync.WaitGroup
}

// blockFetch is one block being read.
type blockFetch struct {
	done   chan struct{}
	cancel context.CancelFunc
	data   []byte
	err    error
}

// newSegReader returns a reader of segs, reading blocks with kc within
// ctx, ahead blocks ahead.
func newSegReader(ctx context.Context, kc *keepclient.Client, segs []manifest.Segment, ahead int) *segReader {
	r := &segReader{ctx: ctx, kc: kc, ahead: ahead, fetches: make(map[int]*blockFetch)}
	for _, s := range segs {
		if s.Length == 0 {
			continue
		}
		if n := len(r.blocks); n == 0 || !sameBlock(r.blocks[n-1], s.Block) {
			r.blocks = append(r.blocks, s.Block)
		}
		r.size += s.Length
		r.segs = append(r.segs, s)
		r.ends = append(r.ends, r.size)
		r.group = append(r.group, len(r.blocks)-1)
	}
	return r
}

func sameBlock(a, b locator.Locator) bool { return a.Hash == b.Hash && a.Size == b.Size }

// Read reads from the current position.
func (r *segReader) Read(p []byte) (int, error) {
	data, err := r.peek(int64(len(p)))
	n := copy(p, data)
	r.pos += int64(n)
	return n, err
}

// peek returns up to max bytes from the current position, as a slice of
// the block holding them (valid until the next call), without moving.
// At the end it returns io.EOF.
func (r *segReader) peek(max int64) ([]byte, error) {
	if r.pos >= r.size {
		return nil, io.EOF
	}
	if max <= 0 {
		return nil, nil
	}
	i := sort.Search(len(r.ends), func(i int) bool { return r.ends[i] > r.pos })
	s := r.segs[i]
	data, err := r.block(r.group[i])
	if err != nil {
		r.err = err
		return nil, err
	}
	from := s.Offset + s.Length - (r.ends[i] - r.pos)
	to := s.Offset + s.Length
	if from < 0 || to > int64(len(data)) {
		r.err = fmt.Errorf("range %d+%d is outside block %s of %d bytes", s.Offset, s.Length, s.Block.Bare(), len(data))
		return nil, r.err
	}
	return data[from:min(to, from+max)], nil
}

// copyN writes the next n bytes of r to w in writes as large as the
// segments allow (up to a block), without copying them first.
func (r *segReader) copyN(w io.Writer, n int64) (int64, error) {
	var done int64
	for done < n {
		data, err := r.peek(n - done)
		if err == io.EOF {
			return done, io.ErrUnexpectedEOF
		}
		if err != nil {
			return done, err
		}
		k, err := w.Write(data)
		r.pos += int64(k)
		done += int64(k)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// Seek sets the position for the next Read.
func (r *segReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return r.pos, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return r.pos, errors.New("seek: negative position")
	}
	r.pos = offset
	return offset, nil
}

// block returns the content of block group g, starting the fetches of
// the blocks after it and dropping those behind it or too far ahead.
func (r *segReader) block(g int) ([]byte, error) {
	for j, f := range r.fetches {
		if j < g || j > g+r.ahead {
			r.drop(j, f)
		}
	}
	f := r.start(g)
	for j := g + 1; j <= g+r.ahead && j < len(r.blocks); j++ {
		r.start(j)
	}
	select {
	case <-f.done:
	case <-r.ctx.Done():
		return nil, r.ctx.Err()
	}
	if f.err != nil {
		// Not kept: a later Read tries again.
		r.drop(g, f)
		return nil, fmt.Errorf("block %s: %w", r.blocks[g].Bare(), f.err)
	}
	return f.data, nil
}

// start starts fetching block group g unless it is under way.
func (r *segReader) start(g int) *blockFetch {
	if f, ok := r.fetches[g]; ok {
		return f
	}
	ctx, cancel := context.WithCancel(r.ctx)
	f := &blockFetch{done: make(chan struct{}), cancel: cancel}
	r.fetches[g] = f
	var buf []byte
	if n := len(r.free); n > 0 {
		buf, r.free = r.free[n-1], r.free[:n-1]
	}
	loc := r.blocks[g]
	r.wg.Go(func() {
		defer close(f.done)
		f.data, f.err = r.kc.Get(ctx, loc, buf)
	})
	return f
}

// drop forgets fetch f of group g, keeping its buffer if it is done.
func (r *segReader) drop(g int, f *blockFetch) {
	delete(r.fetches, g)
	f.cancel()
	select {
	case <-f.done:
		if f.err == nil && cap(f.data) > 0 {
			r.free = append(r.free, f.data[:0])
		}
	default: // cancelled: its buffer is left to the collector
	}
}

// Close stops the fetches in flight and waits for them to end.
func (r *segReader) Close() error {
	for g, f := range r.fetches {
		delete(r.fetches, g)
		f.cancel()
	}
	r.wg.Wait()
	r.free = nil
	return nil
}
