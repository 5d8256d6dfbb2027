// Package heapstat measures the Go heap for tests that bound memory:
// the live heap after a collection, and the peak while work runs.
package heapstat

import (
	"runtime"
	"sync"
	"time"
)

// Live returns the bytes of live heap objects. (One collection is not
// enough: MemStats after it may still count objects it freed.)
func Live() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Peak samples the heap in use every millisecond until stop is called,
// which returns the largest figure seen (sampled once more at the end).
func Peak() (stop func() uint64) {
	var (
		peak uint64
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		sample()
		return peak
	}
}
