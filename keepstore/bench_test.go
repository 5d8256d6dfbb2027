package keepstore_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

func randomBlock() []byte {
	data := make([]byte, locator.MaxBlockSize)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	return data
}

func benchPut(b *testing.B, ts *testServer, hash string, data []byte) {
	req, _ := http.NewRequest("PUT", ts.URL+"/"+hash, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("PUT: %s", resp.Status)
	}
}

// BenchmarkPut64MiB writes distinct 64 MiB blocks to a directory volume
// through a loopback HTTP server: hashing, fsync and rename included.
func BenchmarkPut64MiB(b *testing.B) {
	ts := start(b, keepstore.Config{})
	data := randomBlock()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer() // the client's hashing is not the server's cost
		binary.LittleEndian.PutUint64(data, uint64(i)+uint64(b.N)<<32)
		hash := hashOf(data)
		b.StartTimer()
		benchPut(b, ts, hash, data)
	}
}

// BenchmarkGet64MiB reads one 64 MiB block back, hash-checked.
func BenchmarkGet64MiB(b *testing.B) {
	ts := start(b, keepstore.Config{})
	data := randomBlock()
	benchPut(b, ts, hashOf(data), data)
	url := ts.URL + "/" + hashOf(data) + "+67108864"
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		resp, err := ts.Client().Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(len(data)) || resp.StatusCode != 200 {
			b.Fatalf("GET: %s, %d bytes, %v", resp.Status, n, err)
		}
	}
}
