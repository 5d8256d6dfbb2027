package keepstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/volumetest"
)

// The in-memory driver below is written as a new driver is: a volume
// type and its parameters, with one registration line. Nothing outside
// this file knows it, yet the server opens it from a URL and from an
// Arvados config, and the conformance suite passes on it.
func init() {
	keepstore.RegisterDriver(keepstore.Driver{Name: "Memory", Scheme: "mem", Usage: "mem://NAME\nblocks in memory", ParseURL: parseMem, FromArvados: memFromArvados})
}

// memParams is an in-memory volume's configuration: its name, and for
// tests of a failing listing, after how many blocks its Index fails
// (mem://NAME?index-fails-after=N; -1: never).
type memParams struct {
	name            string
	indexFailsAfter int
}

func parseMem(url string) (keepstore.VolumeParams, error) {
	name, ok := strings.CutPrefix(url, "mem://")
	if !ok || name == "" {
		return nil, fmt.Errorf("volume %s: want mem://NAME", url)
	}
	p := memParams{name: name, indexFailsAfter: -1}
	if name, after, ok := strings.Cut(name, "?index-fails-after="); ok {
		n, err := strconv.Atoi(after)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", url, err)
		}
		p.name, p.indexFailsAfter = name, n
	}
	return p, nil
}

func memFromArvados(params map[string]any) (keepstore.VolumeParams, error) {
	name, _ := params["Name"].(string)
	return parseMem("mem://" + name)
}

func (p memParams) String() string { return "mem://" + p.name }

func (p memParams) Open(_ context.Context, s keepstore.VolumeSettings) (keepstore.Volume, error) {
	return &memVolume{readOnly: s.ReadOnly, capacity: s.Capacity, indexFailsAfter: p.indexFailsAfter, blocks: map[string]memBlock{}, trash: map[string]memBlock{}}, nil
}

type memBlock struct {
	data            []byte
	mtime, deadline time.Time
}

// memVolume keeps blocks in maps. It reads a whole body before storing
// it, so it claims no room as bytes arrive: enough for a test.
type memVolume struct {
	readOnly        bool
	capacity        int64
	indexFailsAfter int

	mu     sync.Mutex
	blocks map[string]memBlock
	trash  map[string]memBlock
	used   int64
}

// lockWritable locks v for a change, or says why it cannot change.
func (v *memVolume) lockWritable() error {
	if v.readOnly {
		return keepstore.ErrReadOnly
	}
	v.mu.Lock()
	return nil
}

// get returns the block hash; v.mu is held.
func (v *memVolume) get(hash string) (memBlock, error) {
	b, ok := v.blocks[hash]
	if !ok {
		return b, fmt.Errorf("%w: %s", keepstore.ErrNotFound, hash)
	}
	return b, nil
}

func (v *memVolume) Open(_ context.Context, hash string) (io.ReadCloser, int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	b, err := v.get(hash)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(b.data)), int64(len(b.data)), nil
}

func (v *memVolume) Put(ctx context.Context, hash string, r io.Reader, size int64) error {
	if v.readOnly {
		return keepstore.ErrReadOnly
	}
	v.mu.Lock()
	err := keepstore.CheckRoom(v.capacity, v.used, 0, 0, max(size, 0))
	v.mu.Unlock()
	if err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	switch {
	case err != nil:
		return err
	case size >= 0 && int64(len(data)) != size:
		return fmt.Errorf("got %d bytes, want %d", len(data), size)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	old := int64(len(v.blocks[hash].data))
	if err := keepstore.CheckRoom(v.capacity, v.used-old, 0, 0, int64(len(data))); err != nil {
		return err
	}
	v.used += int64(len(data)) - old
	v.blocks[hash] = memBlock{data: data, mtime: time.Now()}
	return nil
}

func (v *memVolume) Stat(_ context.Context, hash string) (keepstore.BlockInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	b, err := v.get(hash)
	return keepstore.BlockInfo{Hash: hash, Size: int64(len(b.data)), Mtime: b.mtime}, err
}

func (v *memVolume) Touch(_ context.Context, hash string) error {
	if err := v.lockWritable(); err != nil {
		return err
	}
	defer v.mu.Unlock()
	b, err := v.get(hash)
	if err == nil {
		b.mtime = time.Now()
		v.blocks[hash] = b
	}
	return err
}

func (v *memVolume) Index(_ context.Context, prefix string, fn func(keepstore.BlockInfo) error) error {
	v.mu.Lock()
	var list []keepstore.BlockInfo
	for h, b := range v.blocks {
		if strings.HasPrefix(h, prefix) {
			list = append(list, keepstore.BlockInfo{Hash: h, Size: int64(len(b.data)), Mtime: b.mtime})
		}
	}
	v.mu.Unlock()
	slices.SortFunc(list, func(a, b keepstore.BlockInfo) int { return strings.Compare(a.Hash, b.Hash) })
	for i, b := range list {
		if i == v.indexFailsAfter {
			return errors.New("the memory volume's index broke")
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

func (v *memVolume) Usage(context.Context) (keepstore.Usage, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return keepstore.Usage{UsedBytes: v.used, Blocks: int64(len(v.blocks)), CapacityBytes: v.capacity, FreeBytes: -1}, nil
}

func (v *memVolume) Trash(_ context.Context, hash string, mtime, deadline time.Time) error {
	if err := v.lockWritable(); err != nil {
		return err
	}
	defer v.mu.Unlock()
	b, err := v.get(hash)
	switch {
	case err != nil:
		return err
	case !b.mtime.Equal(mtime):
		return fmt.Errorf("%w: %s", keepstore.ErrChanged, hash)
	}
	delete(v.blocks, hash)
	v.used -= int64(len(b.data))
	if deadline.After(time.Now()) {
		b.deadline = deadline
		v.trash[hash] = b
	}
	return nil
}

func (v *memVolume) Untrash(_ context.Context, hash string) error {
	if err := v.lockWritable(); err != nil {
		return err
	}
	defer v.mu.Unlock()
	b, ok := v.trash[hash]
	if !ok {
		return fmt.Errorf("%w: no trashed copy of %s", keepstore.ErrNotFound, hash)
	}
	delete(v.trash, hash)
	v.used += int64(len(b.data)) - int64(len(v.blocks[hash].data))
	v.blocks[hash] = memBlock{data: b.data, mtime: time.Now()}
	return nil
}

func (v *memVolume) EmptyTrash(_ context.Context, now time.Time) (int, error) {
	if err := v.lockWritable(); err != nil {
		return 0, err
	}
	defer v.mu.Unlock()
	n := 0
	for h, b := range v.trash {
		if b.deadline.Before(now) {
			delete(v.trash, h)
			n++
		}
	}
	return n, nil
}

// TestNewDriver: a volume driver registered by one line, in a file of
// its own, passes the volume conformance suite when opened by its URL,
// and a server serves it from a URL (a PUT and GET over HTTP) and from
// an Arvados config, passing it the common settings.
func TestNewDriver(t *testing.T) {
	t.Run("volumetest", func(t *testing.T) {
		volumetest.Run(t, func(t *testing.T, o volumetest.Options) keepstore.Volume {
			p, err := keepstore.ParseVolume("mem://conformance")
			if err != nil {
				t.Fatal(err)
			}
			v, err := p.Open(context.Background(), keepstore.VolumeSettings{ReadOnly: o.ReadOnly, Capacity: o.Capacity})
			if err != nil {
				t.Fatal(err)
			}
			return v
		})
	})

	t.Run("server", func(t *testing.T) {
		srv, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: "mem://served", Capacity: 1 << 20}},
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		ts := httptest.NewServer(srv)
		defer ts.Close()
		data := []byte("a block kept in memory")
		hash := hashOf(data)
		req, _ := http.NewRequest(http.MethodPut, ts.URL+"/"+hash, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		loc, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT: %s %s", resp.Status, loc)
		}
		resp, err = ts.Client().Get(ts.URL + "/" + strings.TrimSpace(string(loc)))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
			t.Errorf("GET %s: %s %q, want %q", loc, resp.Status, got, data)
		}
		vs := srv.Status(context.Background()).Volumes
		if len(vs) != 1 || vs[0].Path != "mem://served" || vs[0].Blocks != 1 || vs[0].CapacityBytes != 1<<20 {
			t.Errorf("status %+v: want the memory volume holding the block, with the configured capacity", vs)
		}
	})

	t.Run("arvados", func(t *testing.T) {
		const id = "zzzzz-nyw5e-000000000memory"
		p, err := keepstore.ArvadosVolume("memory", map[string]any{"Name": "configured"})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{ID: id, Params: p, ReadOnly: true}},
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		if vs := srv.Status(context.Background()).Volumes; len(vs) != 1 || vs[0].ID != id || !vs[0].ReadOnly || vs[0].Path != "mem://configured" {
			t.Errorf("status %+v: want the configured memory volume, read-only", vs)
		}
	})
}
