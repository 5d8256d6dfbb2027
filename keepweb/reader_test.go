package keepweb

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"testing"

	"github.com/keepproject/keep/internal/heapstat"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
)

// fileOf returns the fixture's file at path.
func (f *fixture) fileOf(t *testing.T, path string) manifest.File {
	for _, file := range f.m.Files {
		if file.Path == path {
			return file
		}
	}
	t.Fatalf("no %s in the manifest", path)
	return manifest.File{}
}

// Seeks and reads anywhere, in any order, give the file's bytes.
func TestSegReaderRandomAccess(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	r := rand.New(rand.NewPCG(3, 4))
	for _, path := range []string{"big.bin", "a.txt", "dir/b.json", "empty"} {
		want := f.files[path]
		for _, ahead := range []int{0, 1, 3} {
			rd := newSegReader(context.Background(), f.kc, f.fileOf(t, path).Segments, ahead)
			for range 50 {
				off := r.IntN(len(want) + 1)
				n := r.IntN(2500)
				if _, err := rd.Seek(int64(off), io.SeekStart); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, n)
				k, err := io.ReadFull(rd, got)
				wantN := min(n, len(want)-off)
				if k != wantN || (err != nil && k == n) || !bytes.Equal(got[:k], want[off:off+wantN]) {
					t.Fatalf("%s ahead %d: %d bytes at %d: got %d (%v)", path, ahead, n, off, k, err)
				}
			}
			rd.Close()
		}
	}
}

// A sequential read holds at most ahead+1 blocks, and their buffers
// are reused.
func TestSegReaderHoldsFewBlocks(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	const ahead = 2
	rd := newSegReader(context.Background(), f.kc, f.fileOf(t, "big.bin").Segments, ahead)
	defer rd.Close()
	var got bytes.Buffer
	buf := make([]byte, 300)
	for {
		n, err := rd.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(rd.fetches) > ahead+1 || len(rd.fetches)+len(rd.free) > ahead+2 {
			t.Fatalf("at %d: %d fetches and %d spare buffers", rd.pos, len(rd.fetches), len(rd.free))
		}
	}
	if !bytes.Equal(got.Bytes(), f.files["big.bin"]) {
		t.Error("wrong bytes")
	}
}

// Downloading a file many times larger than the blocks in flight does
// not grow the heap by anything like its size.
func TestDownloadMemoryBounded(t *testing.T) {
	const blockSize, blocks = 1 << 20, 48
	c := keeptest.NewCluster(t, 2)
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), Token: testToken, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	file := manifest.File{Path: "big"}
	data := make([]byte, blockSize)
	r := rand.NewChaCha8([32]byte{7})
	for range blocks {
		r.Read(data)
		res, err := kc.Put(context.Background(), data, keepclient.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		file.Segments = append(file.Segments, manifest.Segment{Block: res.Locator, Length: blockSize})
	}
	m := &manifest.Manifest{Files: []manifest.File{file}}
	res, err := kc.Put(context.Background(), []byte(m.Text()), keepclient.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{Client: kc, BlocksAhead: 3})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	data = nil
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/c="+res.Locator.String()+"/big", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	// The heap's peak counts garbage too: collect often, so that it
	// is mostly what is live (the cluster's 48 MiB of blocks, and what
	// the download holds).
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	before := heapstat.Live()
	stop := heapstat.Peak()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	peak := stop()
	if resp.StatusCode != http.StatusOK || n != blocks*blockSize || err != nil {
		t.Fatalf("status %d, %d bytes, %v", resp.StatusCode, n, err)
	}
	// A few blocks in flight (4 with BlocksAhead 3), the in-process
	// servers' copy of each block they send, connection buffers and
	// the garbage GOGC=5 allows (about 15 MiB in all); a handler
	// holding the file would add 48 MiB.
	grown := int64(peak) - int64(before)
	t.Logf("the heap grew by %.1f MiB during a %d MiB download", float64(grown)/(1<<20), n>>20)
	if grown > 24*blockSize {
		t.Errorf("the heap grew by %d MiB for a %d MiB download", grown>>20, n>>20)
	}
}
