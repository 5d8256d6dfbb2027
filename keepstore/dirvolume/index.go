package dirvolume

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/keepproject/keep/keepstore"
)

// indexWorkers bounds the subdirectories an Index of more than one
// lists at once; each holds one shardLister, and at most
// 2×indexWorkers are listed ahead of the one being passed to fn, so
// memory stays a few subdirectories' worth however big the volume.
const indexWorkers = 4

// Index implements keepstore.Volume. Each subdirectory is read in large
// batches (getdents on Linux) and each block's size and mtime come from
// one fstatat relative to the subdirectory, its blocks sorted by hash;
// an Index of several subdirectories reads a few at once, ahead of fn,
// in the order they are passed to it.
//
// The files listed are those Arvados keepstore lists: regular files
// (not symbolic links) named by a hash, in the subdirectory of its
// first three digits. Trash (HASH.trash.DEADLINE), temporary files and
// anything else are left out.
func (d *Directory) Index(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error {
	if len(prefix) > 32 || !isLowerHex(prefix) {
		return fmt.Errorf("invalid index prefix %q", prefix)
	}
	if len(prefix) >= 3 {
		return d.indexOne(ctx, prefix[:3], prefix, fn)
	}
	ents, err := os.ReadDir(d.root)
	if err != nil {
		return err
	}
	var shards []string
	for _, e := range ents {
		if e.IsDir() && isShard(e.Name()) && strings.HasPrefix(e.Name(), prefix) {
			shards = append(shards, e.Name())
		}
	}
	if len(shards) == 1 || runtime.GOMAXPROCS(0) == 1 {
		for _, shard := range shards {
			if err := d.indexOne(ctx, shard, prefix, fn); err != nil {
				return err
			}
		}
		return nil
	}
	return d.indexMany(ctx, shards, prefix, fn)
}

// indexOne passes the blocks of one subdirectory to fn.
func (d *Directory) indexOne(ctx context.Context, shard, prefix string, fn func(keepstore.BlockInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := d.listers.Get().(*shardLister)
	defer d.listers.Put(l)
	blocks, err := l.list(d.root, shard, prefix, min(indexWorkers, runtime.GOMAXPROCS(0)))
	if err != nil {
		return err
	}
	return emit(blocks, fn)
}

func emit(blocks []keepstore.BlockInfo, fn func(keepstore.BlockInfo) error) error {
	for _, b := range blocks {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// indexSlot is one subdirectory's listing in indexMany's window.
type indexSlot struct {
	l      *shardLister
	blocks []keepstore.BlockInfo // from l, valid until l lists again
	err    error
	done   chan struct{} // a value when blocks and err are set
}

// indexMany passes the blocks of shards to fn, in order, while up to
// indexWorkers goroutines list the subdirectories after the one being
// passed (a window of 2×indexWorkers). It returns once they have all
// stopped.
func (d *Directory) indexMany(ctx context.Context, shards []string, prefix string, fn func(keepstore.BlockInfo) error) error {
	workers := min(indexWorkers, runtime.GOMAXPROCS(0), len(shards))
	window := make([]indexSlot, 2*workers)
	for i := range window {
		window[i] = indexSlot{l: d.listers.Get().(*shardLister), done: make(chan struct{}, 1)}
	}
	ctx, cancel := context.WithCancel(ctx)
	// Slot i%len(window) belongs to shard i from when it is queued until
	// it has been passed to fn: a job is queued only once its slot is
	// free, so jobs never wait for room, nor a worker to deliver.
	jobs := make(chan int, len(window))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				s := &window[i%len(window)]
				if s.err = ctx.Err(); s.err == nil {
					s.blocks, s.err = s.l.list(d.root, shards[i], prefix, 1)
				}
				s.done <- struct{}{}
			}
		})
	}
	defer func() {
		close(jobs)
		cancel()
		wg.Wait()
		for _, s := range window {
			d.listers.Put(s.l)
		}
	}()
	queued := 0
	for i := range shards {
		for ; queued < len(shards) && queued < i+len(window); queued++ {
			jobs <- queued
		}
		s := &window[i%len(window)]
		select {
		case <-s.done:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.err != nil {
			return s.err
		}
		if err := emit(s.blocks, fn); err != nil {
			return err
		}
	}
	return nil
}
