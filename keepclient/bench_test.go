package keepclient_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// BenchmarkPut64MiB writes one 64 MiB block at N = 1 to 4 to an
// in-process cluster. Allocated bytes per write must not grow with N:
// every upload reads the same buffer.
func BenchmarkPut64MiB(b *testing.B) {
	data := make([]byte, locator.MaxBlockSize)
	rand.Read(data)
	for _, n := range []int{1, 2, 3, 4} {
		b.Run(fmt.Sprint("N=", n), func(b *testing.B) {
			c := keeptest.NewCluster(b, 5)
			c.Discard(true)
			kc, err := keepclient.New(keepclient.Options{Services: c.Services(), Replicas: n})
			if err != nil {
				b.Fatal(err)
			}
			defer kc.Close()
			hash := locator.New(data).Hash
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Hash: hash})
				if err != nil || res.Replicas != n {
					b.Fatal(err)
				}
			}
		})
	}
}
