package keepclient_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
)

// TestPutFile stores blocks that are ranges of a file, to disk services
// (sent from the file with sendfile) and through a proxy (one upload at
// a time), and checks that the servers hold exactly the range. A hash
// that does not match the file's bytes (a file changed after it was
// hashed) stores nothing; a missing hash is refused.
func TestPutFile(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.NewChaCha8([32]byte{7}).Read(data)
	path := filepath.Join(t.TempDir(), "input")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hashOf := func(p []byte) string { s := md5.Sum(p); return hex.EncodeToString(s[:]) }

	for _, proxy := range []bool{false, true} {
		c := keeptest.NewCluster(t, 4)
		if proxy {
			c = keeptest.NewCluster(t, 1)
			c.Server(0).SetType("proxy")
			c.Server(0).SetReplicas(2)
		}
		kc := newClient(t, c)
		for _, r := range []struct{ off, size int }{{0, 1 << 20}, {123, 3<<20 + 5}, {len(data) - 10, 10}} {
			want := data[r.off : r.off+r.size]
			var progress atomic.Int64 // called from the uploads' goroutines
			res, err := kc.PutFile(context.Background(), f, int64(r.off), r.size, keepclient.PutOptions{Hash: hashOf(want), Progress: func(n int) { progress.Add(int64(n)) }})
			if err != nil || res.Replicas != 2 {
				t.Fatalf("proxy %v: PutFile(%d, %d) = %+v, %v", proxy, r.off, r.size, res, err)
			}
			held := 0
			for i, s := range c.Servers() {
				if got, ok := s.Block(hashOf(want)); ok {
					held++
					if !bytes.Equal(got, want) {
						t.Errorf("proxy %v: server %d holds %d bytes, not the range", proxy, i, len(got))
					}
				}
			}
			if want := map[bool]int{false: 2, true: 1}[proxy]; held != want {
				t.Errorf("proxy %v: %d servers hold the block, want %d", proxy, held, want)
			}
			if progress.Load() != int64(r.size) {
				t.Errorf("proxy %v: progress %d of %d", proxy, progress.Load(), r.size)
			}
		}
	}

	c := keeptest.NewCluster(t, 3)
	kc := newClient(t, c)
	wrong := hashOf([]byte("not the file's bytes"))
	_, err = kc.PutFile(context.Background(), f, 0, 4096, keepclient.PutOptions{Hash: wrong})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) || ire.Stored != 0 {
		t.Errorf("PutFile with a stale hash = %v, want nothing stored", err)
	}
	for i, s := range c.Servers() {
		if s.Has(wrong) {
			t.Errorf("server %d stored a block under a hash its bytes do not have", i)
		}
	}
	if _, err := kc.PutFile(context.Background(), f, 0, 10, keepclient.PutOptions{}); err == nil || !strings.Contains(err.Error(), "no hash") {
		t.Errorf("PutFile without a hash = %v", err)
	}
}
