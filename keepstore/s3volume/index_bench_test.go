package s3volume_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
)

var (
	benchBlocks  = flag.Int("s3volume.index-blocks", 2000, "blocks (each with its recent/ marker) in the bucket BenchmarkIndex lists")
	benchLatency = flag.Duration("s3volume.latency", 0, "a delay BenchmarkIndex adds to every request, as a distant store has")
)

// fillBucket writes n blocks of "block I", each with its recent/
// marker, straight into the bucket, 16 at a time.
func fillBucket(tb testing.TB, raw *s3.Client, bucket string, pl, n int) {
	tb.Helper()
	ctx := context.Background()
	key := func(h string) string {
		if pl > 0 {
			return h[:pl] + "/" + h
		}
		return h
	}
	const workers = 16
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				data := []byte(fmt.Sprint("block ", i))
				h := hashOf(data)
				for _, o := range []struct {
					key  string
					body []byte
				}{{key(h), data}, {"recent/" + key(h), nil}} {
					if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &o.key, Body: bytes.NewReader(o.body)}); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
}

// delayed adds a fixed delay to every request.
type delayed struct {
	rt    http.RoundTripper
	delay time.Duration
}

func (d delayed) RoundTrip(r *http.Request) (*http.Response, error) {
	t := time.NewTimer(d.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return d.rt.RoundTrip(r)
}

// BenchmarkIndex lists a bucket of -s3volume.index-blocks blocks and
// their markers (2,000 unless set) on the test S3 server, one page at a
// time and in parts 4 and 16 at a time, as they are and with
// -s3volume.latency added to every request, and reports blocks listed
// per second.
func BenchmarkIndex(b *testing.B) {
	srv := s3test.Start(b)
	bucket := srv.NewBucket(b)
	hc := srv.HTTPClient()
	b.Cleanup(hc.CloseIdleConnections)
	start := time.Now()
	fillBucket(b, rawClient(b, srv), bucket, 3, *benchBlocks)
	b.Logf("wrote %d blocks and their markers in %.1f s", *benchBlocks, time.Since(start).Seconds())
	latencies := []time.Duration{0}
	if *benchLatency > 0 {
		latencies = append(latencies, *benchLatency)
	}
	for _, latency := range latencies {
		for _, conc := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("latency=%s/concurrency=%d", latency, conc), func(b *testing.B) {
				o := s3volume.Options{Bucket: bucket, PrefixLength: 3, ReadOnly: true, IndexConcurrency: conc,
					Endpoint: s3test.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
					HTTPClient: hc}
				if latency > 0 {
					o.HTTPClient = &http.Client{Transport: delayed{hc.Transport, latency}}
				}
				benchIndex(b, o)
			})
		}
	}
}

// benchIndex opens a volume with o and lists it whole b.N times.
func benchIndex(b *testing.B, o s3volume.Options) {
	v, err := s3volume.Open(context.Background(), o)
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	for b.Loop() {
		n := 0
		if err := v.Index(context.Background(), "", func(keepstore.BlockInfo) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != *benchBlocks {
			b.Fatalf("listed %d blocks, want %d", n, *benchBlocks)
		}
	}
	b.ReportMetric(float64(*benchBlocks)*float64(b.N)/b.Elapsed().Seconds(), "blocks/s")
}
