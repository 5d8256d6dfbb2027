package dirvolume

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
)

// indexReference is Directory.Index as it was before it was made fast
// (os.ReadDir and an lstat per file by path): the behaviour the fast one
// must keep, byte for byte.
func (d *Directory) indexReference(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error {
	if len(prefix) > 32 || !isLowerHex(prefix) {
		return fmt.Errorf("invalid index prefix %q", prefix)
	}
	var shards []string
	if len(prefix) >= 3 {
		shards = []string{prefix[:3]}
	} else {
		ents, err := os.ReadDir(d.root)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.IsDir() && isShard(e.Name()) && strings.HasPrefix(e.Name(), prefix) {
				shards = append(shards, e.Name())
			}
		}
	}
	for _, shard := range shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(filepath.Join(d.root, shard))
		if errors.Is(err, fs.ErrNotExist) {
			if _, rootErr := os.Stat(d.root); rootErr != nil {
				return rootErr
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := e.Name()
			if !isHash(name) || name[:3] != shard || !strings.HasPrefix(name, prefix) {
				continue
			}
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			if err := fn(keepstore.BlockInfo{Hash: name, Size: fi.Size(), Mtime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexFunc is Index or indexReference.
type indexFunc func(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error

// writeIndex writes a listing as keepstore's /index does: a line
// "HASH+SIZE MTIME_NANOS" per block, in the order listed.
func writeIndex(w io.Writer, index indexFunc, prefix string) error {
	line := make([]byte, 0, 64)
	return index(context.Background(), prefix, func(b keepstore.BlockInfo) error {
		line = append(line[:0], b.Hash...)
		line = append(line, '+')
		line = strconv.AppendInt(line, b.Size, 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, b.Mtime.UnixNano(), 10)
		line = append(line, '\n')
		_, err := w.Write(line)
		return err
	})
}

// strayVolume generates a volume of n blocks and adds what a real one
// may hold beside them: trash, temporary files, a block in the wrong
// subdirectory, names that are not hashes, a symbolic link and a
// directory named like blocks, an empty subdirectory, a file named
// like a subdirectory, and blocks with old and sub-second mtimes.
func strayVolume(t *testing.T, n int) (root string, blocks []string) {
	t.Helper()
	root = t.TempDir()
	generateVolume(t, root, "stray", n)
	var all []string
	subs, _ := os.ReadDir(root)
	for _, s := range subs {
		ents, _ := os.ReadDir(filepath.Join(root, s.Name()))
		for _, e := range ents {
			all = append(all, e.Name())
		}
	}
	// Strays are named after hashes of no block generated.
	b0, b1, b2 := strayHash(0), strayHash(1), strayHash(2)
	write := func(rel string, data string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(b0[:3], b0+trashInfix+"1700000000"), "trashed")
	write(filepath.Join(b0[:3], tmpPrefix+b1+"-0123abcd-42"), "partial")
	write(filepath.Join("fff", "000"+b1[3:]), "wrong subdirectory")
	write(filepath.Join(b1[:3], strings.ToUpper(b1)), "upper case")
	write(filepath.Join(b1[:3], b1[:31]), "short")
	write(filepath.Join(b1[:3], b1+"0"), "long")
	write("README", "not a block")
	write("abcd", "a file named like no subdirectory")
	// A file and an empty directory named like subdirectories, where
	// the generated blocks left room for them.
	for _, name := range []string{"fed", "fec", "fea"} {
		if _, err := os.Lstat(filepath.Join(root, name)); err == nil {
			continue
		}
		write(name, "a file named like a subdirectory")
		break
	}
	for _, name := range []string{"eee", "eed", "eeb"} {
		if os.Mkdir(filepath.Join(root, name), 0o755) == nil {
			break
		}
	}
	os.MkdirAll(filepath.Join(root, b2[:3]), 0o755)
	target := b2
	if len(all) > 0 {
		target = filepath.Join("..", all[0][:3], all[0])
	}
	if err := os.Symlink(target, filepath.Join(root, b2[:3], b2[:3]+"0000000000000000000000000000a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, b2[:3], b2[:3]+"fffffffffffffffffffffffffffff"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	for i, h := range all[:min(len(all), 2)] {
		mt := old.Add(-time.Duration(i))
		os.Chtimes(filepath.Join(root, h[:3], h), mt, mt)
	}
	return root, all
}

// strayHash is the hash of the i-th stray of strayVolume.
func strayHash(i int) string {
	sum := md5.Sum([]byte(fmt.Sprint("stray ", i)))
	return hex.EncodeToString(sum[:])
}

// TestIndexMatchesReference: the listing of a volume with strays, for
// prefixes of every length, is byte for byte the old implementation's,
// and Index lists exactly the blocks generated, in order.
func TestIndexMatchesReference(t *testing.T) {
	for _, n := range []int{0, 1, 300, 5000} {
		t.Run(fmt.Sprint(n, " blocks"), func(t *testing.T) {
			t.Parallel()
			root, blocks := strayVolume(t, n)
			d, err := Open(root, Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			h := "0123456789abcdef0123456789abcdef"
			if n > 0 {
				h = blocks[len(blocks)/2]
			}
			prefixes := []string{"", "0", "f", "e", "ee", "eee", "eed", "fed", "fec", "fff", strayHash(2)[:3], h[:1], h[:2], h[:3], h[:4], h[:5], h[:31], h}
			for _, p := range prefixes {
				var want, got bytes.Buffer
				werr := writeIndex(&want, d.indexReference, p)
				gerr := writeIndex(&got, d.Index, p)
				if (werr == nil) != (gerr == nil) {
					t.Errorf("prefix %q: reference error %v, Index error %v", p, werr, gerr)
				}
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Errorf("prefix %q: Index lists\n%s\nthe reference\n%s", p, head(got.String()), head(want.String()))
				}
				if p == "" {
					if lines := strings.Count(got.String(), "\n"); lines != n {
						t.Errorf("Index lists %d blocks, want %d", lines, n)
					}
				}
			}
		})
	}
}

// head is the first lines of a listing, for messages.
func head(s string) string {
	lines := strings.SplitAfterN(s, "\n", 6)
	if len(lines) > 5 {
		lines[5] = fmt.Sprintf("… (%d bytes)\n", len(s))
	}
	return strings.Join(lines, "")
}

// BenchmarkIndex lists a generated volume of -dirvolume.index-blocks
// blocks (20,000 unless set; in -dirvolume.dir if set), or the volume
// -dirvolume.volume, in one call ("whole") and one subdirectory at a time as keepstore's /index reads
// it ("by-subdirectory"), with Index and with the old implementation
// ("reference"). It reports blocks listed per second and the process's
// CPU time (user and system) per block, which depends less on what else
// the machine is doing.
func BenchmarkIndex(b *testing.B) {
	root := *benchVolume
	if root == "" {
		root = benchRoot(b)
		start := time.Now()
		generateVolume(b, root, "bench", *benchBlocks)
		b.Logf("generated %d blocks in %s in %.1f s", *benchBlocks, root, time.Since(start).Seconds())
	}
	d, err := Open(root, Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	<-d.ScanEnded()
	u, _ := d.Usage(context.Background())
	blocks := float64(u.Blocks)
	benchIndex := func(b *testing.B, list func() error) {
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			if err := list(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(blocks*float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
		b.ReportMetric(float64(cpuTime()-cpu)/blocks/float64(b.N), "cpu-ns/block")
	}
	for _, impl := range []struct {
		name  string
		index indexFunc
		vol   keepstore.Volume
	}{{"new", d.Index, d}, {"reference", d.indexReference, referenceVolume{d}}} {
		b.Run(impl.name+"/whole", func(b *testing.B) {
			benchIndex(b, func() error { return writeIndex(io.Discard, impl.index, "") })
		})
		b.Run(impl.name+"/by-subdirectory", func(b *testing.B) {
			benchIndex(b, func() error {
				for i := range nShards {
					if err := writeIndex(io.Discard, impl.index, d.shardName(i)); err != nil {
						return err
					}
				}
				return nil
			})
		})
		b.Run(impl.name+"/server", func(b *testing.B) {
			url := serveIndex(b, impl.vol)
			benchIndex(b, func() error { return getIndex(url) })
		})
	}
}

// referenceVolume is a Directory listed by indexReference.
type referenceVolume struct{ *Directory }

func (v referenceVolume) Index(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error {
	return v.indexReference(ctx, prefix, fn)
}

// serveIndex runs a keepstore server of v on loopback until tb ends and
// returns the URL of its index, with the system token.
func serveIndex(tb testing.TB, v keepstore.Volume) string {
	tb.Helper()
	ks, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Volume: v, Path: "bench"}}, SystemToken: "sys",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(ks)
	tb.Cleanup(func() {
		srv.Close()
		ks.Close()
	})
	return srv.URL + "/index"
}

// getIndex reads a whole index and checks that it is complete.
func getIndex(url string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer sys")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var tail [2]byte
	n, err := io.Copy(lastTwo{&tail}, resp.Body)
	switch {
	case err != nil:
		return err
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	case n < 1 || tail[1] != '\n' || n > 1 && tail[0] != '\n':
		return fmt.Errorf("GET %s: the listing is incomplete", url)
	}
	return nil
}

// lastTwo keeps the last two bytes written to it.
type lastTwo struct{ b *[2]byte }

func (w lastTwo) Write(p []byte) (int, error) {
	for _, c := range p[max(len(p)-2, 0):] {
		w.b[0], w.b[1] = w.b[1], c
	}
	return len(p), nil
}

// TestIndexStops: an Index of many subdirectories, listed several at a
// time, stops at fn's first error and when its context is canceled,
// with every goroutine it started stopped (TestMain checks that none is
// left).
func TestIndexStops(t *testing.T) {
	root := t.TempDir()
	generateVolume(t, root, "stops", 300)
	d, err := Open(root, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	stop := errors.New("stop")
	for _, after := range []int{1, 50, 299} {
		calls := 0
		err := d.Index(context.Background(), "", func(keepstore.BlockInfo) error {
			if calls++; calls == after {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || calls != after {
			t.Errorf("Index with fn failing at call %d = %v after %d calls", after, err, calls)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err = d.Index(ctx, "", func(keepstore.BlockInfo) error {
		if calls++; calls == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls >= 300 {
		t.Errorf("Index canceled after 10 blocks = %v after %d calls, want context.Canceled", err, calls)
	}
}
