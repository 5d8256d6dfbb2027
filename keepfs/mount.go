package keepfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/keepproject/keep/keepclient"
)

// Defaults for Options.
const (
	DefaultCacheSize = 256 << 20
	DefaultReadahead = 3
)

// Options adjust New.
type Options struct {
	// Client reads the blocks. Required.
	Client *keepclient.Client
	// CacheSize bounds the blocks held in memory, in bytes, besides
	// those being read or fetched at the moment; 0 means
	// DefaultCacheSize.
	CacheSize int64
	// Readahead is the number of blocks fetched ahead of a sequential
	// reader; 0 means DefaultReadahead, negative none.
	Readahead int
	// DiskCache, if not "", is a directory keeping blocks across
	// mounts, up to DiskCacheSize bytes (0: 10 GiB).
	DiskCache     string
	DiskCacheSize int64
	// Logger gets one line per failed block read, and the disk cache's
	// warnings; nil discards them.
	Logger *slog.Logger
	// FsName is the source shown in /proc/mounts; "" means "keep".
	FsName string
	// Debug logs every FUSE request (to Logger's destination via the
	// standard logger).
	Debug bool
}

// DefaultDiskCacheSize is the disk cache's bound when
// Options.DiskCacheSize is 0.
const DefaultDiskCacheSize = 10 << 30

// Mount is a tree served at a directory.
type Mount struct {
	tree      *Tree
	kc        *keepclient.Client
	log       *slog.Logger
	cache     *blockCache
	disk      *diskCache
	readahead int
	size      int64
	uid, gid  uint32
	started   time.Time

	dir    string
	server *fuse.Server
	cancel context.CancelFunc
	once   sync.Once
	done   chan struct{} // closed when unmounted and every fetch has ended
}

// New mounts t at the directory dir and serves it until Unmount, or an
// external umount. The mount is in place when it returns.
func New(dir string, t *Tree, opts Options) (*Mount, error) {
	if opts.Client == nil {
		return nil, errors.New("keepfs.New: no Client")
	}
	m := &Mount{tree: t, kc: opts.Client, log: opts.Logger, readahead: opts.Readahead, size: t.Size(),
		uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), started: time.Now(), dir: dir, done: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.readahead == 0 {
		m.readahead = DefaultReadahead
	}
	m.readahead = max(m.readahead, 0)
	if opts.DiskCache != "" {
		size := opts.DiskCacheSize
		if size == 0 {
			size = DefaultDiskCacheSize
		}
		var err error
		if m.disk, err = openDiskCache(opts.DiskCache, size, m.log); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	size := opts.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	m.cache = newBlockCache(ctx, size, m.readahead, m.fetch, m.stored)
	if err := m.mount(opts); err != nil {
		cancel()
		return nil, err
	}
	go m.serve()
	return m, nil
}

// mount makes the FUSE server and mounts it.
func (m *Mount) mount(opts Options) error {
	fsName := opts.FsName
	if fsName == "" {
		fsName = "keep"
	}
	mopts := &fuse.MountOptions{
		FsName: fsName, Name: "keep", DirectMount: true, Debug: opts.Debug,
		MaxReadAhead: 1 << 20, MaxWrite: 1 << 20, Options: []string{"ro", "default_permissions"},
	}
	server, err := fuse.NewServer(newRawFS(m), m.dir, mopts)
	if err != nil {
		return fmt.Errorf("mounting at %s: %w", m.dir, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return fmt.Errorf("mounting at %s: %w", m.dir, err)
	}
	m.server = server
	return nil
}

// serve waits for the kernel to end the mount, then for the fetches.
func (m *Mount) serve() {
	m.server.Wait()
	m.cancel()
	m.cache.wait()
	close(m.done)
}

// Done is closed once the mount has ended (by Unmount or an external
// umount) and every block fetch has stopped.
func (m *Mount) Done() <-chan struct{} { return m.done }

// Unmount ends the mount and stops every block fetch. It returns once
// the mount is gone; the kernel may take a moment more to close the
// connection, and Done is closed then. A mount still in use (a
// process's working directory, an open file) is detached lazily: it is
// gone at once for new users, and Unmount waits until the last one
// lets go.
func (m *Mount) Unmount() error {
	var err error
	m.once.Do(func() { err = m.unmount() })
	if err != nil {
		return err
	}
	m.cancel()
	m.cache.wait()
	return nil
}

// unmount asks the kernel to end the mount.
func (m *Mount) unmount() error {
	select {
	case <-m.done:
		return nil // unmounted from outside
	default:
	}
	err := syscall.Unmount(m.dir, 0)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EBUSY):
		if err := syscall.Unmount(m.dir, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", m.dir, err)
		}
		m.log.Warn("the mount is in use: detached, it is gone for new users; waiting for the files open in it to be closed", "mountpoint", m.dir)
		<-m.done
		return nil
	}
	// Not allowed to (not root): fusermount.
	if err := m.server.Unmount(); err != nil {
		return fmt.Errorf("unmounting %s: %w", m.dir, err)
	}
	return nil
}

// fetch reads block i: from the disk cache if there, intact, else from
// the servers (and into the disk cache).
func (m *Mount) fetch(ctx context.Context, i uint32, buf []byte) ([]byte, error) {
	loc := m.tree.blocks[i]
	if m.disk != nil {
		if data, ok := m.disk.get(loc, buf); ok {
			return data, nil
		}
	}
	data, err := m.kc.Get(ctx, loc, buf)
	if err != nil && ctx.Err() == nil {
		m.log.Error("reading a block failed; the reader gets EIO", "block", loc.Bare().String(), "servers", m.serverNames(), "error", err)
	}
	return data, err
}

// stored is told of each block fetched.
func (m *Mount) stored(i uint32, data []byte) {
	if m.disk != nil {
		m.disk.put(m.tree.blocks[i], data)
	}
}

// serverNames lists the services a read may try.
func (m *Mount) serverNames() []string {
	var out []string
	for _, s := range m.kc.Services() {
		out = append(out, s.URL())
	}
	return out
}
