package keepweb

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

var (
	benchSize   = flag.Int64("keepweb.size", 1<<30, "bytes of the file BenchmarkDownload reads")
	benchRounds = flag.Int("keepweb.rounds", 5, "times BenchmarkDownload runs each download, alternately")
	benchAhead  = flag.Int("keepweb.ahead", DefaultBlocksAhead, "Options.BlocksAhead of the handler BenchmarkDownload reads through")
)

// BenchmarkDownload compares a sequential download of one file through
// keep web (this package's handler on a loopback HTTP server, the body
// written to a file by an HTTP client) with keep get's (transfer.Get,
// as 'keep get -o FILE' runs it) of the same file from the same cluster
// in the same run: two 'keep server' processes on directory volumes,
// the file in 64 MiB blocks. The two alternate, -keepweb.rounds times
// each, so that load from elsewhere falls on both alike; the median
// rates and their ratio web/get are logged (-v shows them).
//
//	go test ./keepweb -run '^$' -bench BenchmarkDownload -benchtime 1x -v
//
// (-keepweb.size BYTES changes the file's size, 1 GiB by default.)
func BenchmarkDownload(b *testing.B) {
	kc, m := benchCluster(b, *benchSize)
	dir := b.TempDir()
	ctx := context.Background()
	h, err := New(Options{Client: kc, BlocksAhead: *benchAhead})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	id := storeManifest(b, kc, m)
	rates := map[string][]float64{}
	run := func(name string, download func(b *testing.B)) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(*benchSize)
			for b.Loop() {
				download(b)
			}
			rates[name] = append(rates[name], float64(*benchSize)*float64(b.N)/b.Elapsed().Seconds())
		})
	}
	for range *benchRounds {
		run("get", func(b *testing.B) {
			if err := transfer.Get(ctx, kc, m, filepath.Join(dir, "get.bin"), nil, transfer.GetOptions{BlocksAhead: 4, Overwrite: true}); err != nil {
				b.Fatal(err)
			}
		})
		run("web", func(b *testing.B) { webDownload(b, srv.URL+"/c="+id+"/big.bin", filepath.Join(dir, "web.bin")) })
	}
	get, web := median(rates["get"]), median(rates["web"])
	if get > 0 && web > 0 {
		b.Logf("median of %d rounds: keep get %.0f MB/s, keep web %.0f MB/s: web/get = %.2f", len(rates["web"]), get/1e6, web/1e6, web/get)
	}
}

// median returns the median of xs (0 for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

// webDownload writes what GET u answers to the file out.
func webDownload(b *testing.B, u, out string) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatal(resp.Status)
	}
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	// Copied as a download tool would, in large reads and writes.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, resp.Body, make([]byte, 1<<20))
	if err != nil || n != *benchSize {
		b.Fatalf("got %d bytes (%v), want %d", n, err, *benchSize)
	}
}

// benchCluster starts two keep server processes and stores a file of
// size random bytes on them, one copy of each block.
func benchCluster(b *testing.B, size int64) (*keepclient.Client, *manifest.Manifest) {
	env := proctest.Env(b)
	var svcs []keepclient.Service
	for i := range 2 {
		_, addr := proctest.Listen(b, env, "listening", "server", "--listen", "127.0.0.1:0", "--volume", b.TempDir())
		svcs = append(svcs, keepclient.Service{UUID: fmt.Sprintf("bench-bi6l4-%015d", i), Host: "127.0.0.1", Port: int(addr.Port()), Type: "disk"})
	}
	kc, err := keepclient.New(keepclient.Options{Services: svcs, Token: testToken, Replicas: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(kc.Close)
	r := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, locator.MaxBlockSize)
	file := manifest.File{Path: "big.bin"}
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		r.Read(buf[:n])
		res, err := kc.Put(context.Background(), buf[:n], keepclient.PutOptions{})
		if err != nil {
			b.Fatal(err)
		}
		file.Segments = append(file.Segments, manifest.Segment{Block: res.Locator, Length: n})
		left -= n
	}
	return kc, &manifest.Manifest{Files: []manifest.File{file}}
}

// storeManifest stores m as a block and returns its locator.
func storeManifest(b *testing.B, kc *keepclient.Client, m *manifest.Manifest) string {
	res, err := kc.Put(context.Background(), []byte(m.Text()), keepclient.PutOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return res.Locator.String()
}
