package dirvolume

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keepproject/keep/keepstore"
)

// nShards is the number of block subdirectories a volume can have:
// one per three hex digits.
const nShards = 1 << 12

// scanRetries is how many times the scan reads a subdirectory that
// writes keep changing before it reads it holding d.mu.
const scanRetries = 3

// scanState is the progress of the scan started by Open. Its fields are
// protected by Directory.mu.
type scanState struct {
	listed  [nShards]bool // the subdirectories that existed at open; only these are scanned
	next    int           // subdirectories before this one are counted
	dirty   bool          // a change touched subdirectory next while it was being read
	done    bool          // every subdirectory is counted: used and blocks are exact
	state   string        // "running", "done", "failed" or "canceled"
	err     error         // why the scan failed
	shards  int           // subdirectories to scan (those listed)
	scanned int           // subdirectories scanned so far
	blocks  int64         // blocks the scan has counted
	bytes   int64         // their bytes
	tmps    int           // temporary files it removed
	start   time.Time
	took    time.Duration // once ended

	cancel context.CancelFunc
	ended  chan struct{}                        // closed when the scan ends
	hook   func(ctx context.Context, shard int) // tests: called after reading a subdirectory
}

// shardIndex is the subdirectory of hash, as a number below nShards.
func shardIndex(hash string) int {
	i, _ := strconv.ParseUint(hash[:3], 16, 16)
	return int(i)
}

// account adds a change to the block files of hash's subdirectory to
// the counts, if the scan has counted that subdirectory (or it did not
// exist at open); otherwise the scan will count the change when it gets
// there. d.mu must be held.
func (d *Directory) account(hash string, bytes, blocks int64) {
	i := shardIndex(hash)
	switch s := &d.scan; {
	case s.done || !s.listed[i] || i < s.next:
		d.used += bytes
		d.blocks += blocks
	case i == s.next:
		s.dirty = true // read again, as the scan may have missed it
	}
}

// startScan lists the volume's subdirectories and, if there are any,
// counts their blocks in the background.
func (d *Directory) startScan(hook func(context.Context, int)) error {
	subs, err := os.ReadDir(d.root)
	if err != nil {
		return err
	}
	s := &d.scan
	s.hook = hook
	s.start = time.Now()
	s.ended = make(chan struct{})
	for _, sub := range subs {
		if sub.IsDir() && isShard(sub.Name()) {
			s.listed[shardIndex(sub.Name())] = true
			s.shards++
		}
	}
	if s.shards == 0 {
		s.done, s.state, s.next = true, "done", nShards
		close(s.ended)
		return nil
	}
	s.state = "running"
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go d.runScan(ctx)
	return nil
}

// runScan counts the listed subdirectories, in order, and removes the
// temporary files left there by earlier servers.
func (d *Directory) runScan(ctx context.Context) {
	s := &d.scan
	defer close(s.ended)
	var err error
	for i := 0; i < nShards && err == nil; i++ {
		if err = ctx.Err(); err == nil {
			err = d.scanShard(ctx, i)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s.took = time.Since(s.start)
	switch {
	case err == nil:
		s.done, s.state = true, "done"
	case ctx.Err() != nil:
		s.state = "canceled"
	default:
		s.state, s.err = "failed", err
	}
}

// scanShard counts subdirectory i. It reads it without holding d.mu; if
// a write or trash changed it meanwhile it reads it again, and after
// scanRetries tries holding d.mu.
func (d *Directory) scanShard(ctx context.Context, i int) error {
	s := &d.scan
	d.mu.Lock()
	listed := s.listed[i]
	if !listed {
		s.next = i + 1
	}
	s.dirty = false
	d.mu.Unlock()
	if !listed {
		return nil
	}
	for try := 1; ; try++ {
		locked := try > scanRetries
		if locked {
			d.mu.Lock()
		}
		bytes, blocks, tmps, err := d.readShard(i)
		if s.hook != nil && err == nil && !locked {
			s.hook(ctx, i)
		}
		if !locked {
			d.mu.Lock()
		}
		s.tmps += tmps
		if err != nil {
			d.mu.Unlock()
			return err
		}
		if !s.dirty || locked {
			d.used += bytes
			d.blocks += blocks
			s.bytes += bytes
			s.blocks += blocks
			s.scanned++
			s.next = i + 1
			s.dirty = false
			d.mu.Unlock()
			return nil
		}
		s.dirty = false
		d.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// readShard sums the block files of subdirectory i and removes the
// temporary files no write of this Directory made (see tmpPattern).
func (d *Directory) readShard(i int) (bytes, blocks int64, tmps int, err error) {
	l := d.listers.Get().(*shardLister)
	defer d.listers.Put(l)
	shard := d.shardName(i)
	found, err := l.list(d.root, shard, "", 1)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, 0, nil // removed since open
	}
	if err != nil {
		return 0, 0, 0, err
	}
	for _, b := range found {
		bytes += b.Size
		blocks++
	}
	if d.readOnly {
		return bytes, blocks, 0, nil
	}
	mine := "-" + d.session + "-"
	for _, name := range l.temps {
		// The lock is held, and the file is no write's of this
		// Directory: an interrupted write of an earlier server left it.
		if !strings.Contains(name, mine) && os.Remove(filepath.Join(d.root, shard, name)) == nil {
			tmps++
		}
	}
	return bytes, blocks, tmps, nil
}

func (d *Directory) shardName(i int) string {
	const hex = "0123456789abcdef"
	return string([]byte{hex[i>>8], hex[i>>4&15], hex[i&15]})
}

// stopScan cancels the scan, if it is running, and waits for it to end.
func (d *Directory) stopScan() {
	if d.scan.cancel != nil {
		d.scan.cancel()
		<-d.scan.ended
	}
}

// ScanEnded returns a channel closed when the scan Open started ends:
// every block counted, or the scan failed or was canceled by Close.
// ScanStatus says which.
func (d *Directory) ScanEnded() <-chan struct{} { return d.scan.ended }

// ScanStatus implements keepstore.Scanner: the progress of the count of
// blocks and bytes, and of the removal of temporary files, that Open
// started in the background.
func (d *Directory) ScanStatus() keepstore.ScanStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.scan
	st := keepstore.ScanStatus{State: s.state, Blocks: s.blocks, Bytes: s.bytes, Dirs: s.shards, DirsDone: s.scanned,
		TempFilesRemoved: s.tmps, Seconds: s.took.Seconds()}
	if s.state == "running" {
		st.Seconds = time.Since(s.start).Seconds()
	}
	if s.err != nil {
		st.Error = s.err.Error()
	}
	return st
}
