package netbed

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// sampleEvery is how often sampleLinks reads the links' counters.
const sampleEvery = 100 * time.Millisecond

// linkUse is how busy one host's link was, one way, during a transfer.
type linkUse struct {
	name string
	mean float64 // bytes moved over what the link's rate allows in the time
	idle float64 // share of the samples in which it moved under a tenth of its rate
}

// sampleLinks reads the bytes hosts received (or, with sent, sent)
// every sampleEvery until stop is called, and stop returns how busy
// each host's link was. Hosts with unshaped links are left out.
func sampleLinks(ctx context.Context, hosts []*Host, sent bool) (stop func() []linkUse) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	use := make([]linkUse, len(hosts))
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		first, last := counters(hosts, sent), counters(hosts, sent)
		idle, samples := make([]int, len(hosts)), 0
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		prev := start
		for done := false; !done; {
			select {
			case <-ctx.Done():
				done = true
			case <-tick.C:
			}
			now, c := time.Now(), counters(hosts, sent)
			for i, h := range hosts {
				if float64(c[i]-last[i]) < 0.1*float64(h.Link().Rate)/8*now.Sub(prev).Seconds() {
					idle[i]++
				}
			}
			samples++
			last, prev = c, now
		}
		secs := time.Since(start).Seconds()
		for i, h := range hosts {
			use[i] = linkUse{name: h.Name(), idle: float64(idle[i]) / float64(samples)}
			if rate := h.Link().Rate; rate > 0 {
				use[i].mean = float64(last[i]-first[i]) / (float64(rate) / 8 * secs)
			}
		}
	}()
	return func() []linkUse {
		cancel()
		wg.Wait()
		return use
	}
}

// counters returns the bytes each host has received or sent so far (0
// where the counter cannot be read).
func counters(hosts []*Host, sent bool) []int64 {
	c := make([]int64, len(hosts))
	for i, h := range hosts {
		r, s, err := h.Traffic()
		if err != nil {
			continue
		}
		c[i] = r
		if sent {
			c[i] = s
		}
	}
	return c
}

// formatUse formats link uses as "s0 93% (idle 4%), s1 …".
func formatUse(use []linkUse) string {
	parts := make([]string, len(use))
	for i, u := range use {
		parts[i] = fmt.Sprintf("%s %.0f%% (idle %.0f%%)", u.name, 100*u.mean, 100*u.idle)
	}
	return strings.Join(parts, ", ")
}
