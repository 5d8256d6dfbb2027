package netbed

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var runModel = flag.Bool("netbed.model", false, "run TestWriteModel, the fluid model of puts over the scenarios' links")

// A writeModel is a fluid model of a put: blocks of one unit each go to
// n servers, inFlight blocks at a time; every link's rate is shared
// max-min fairly among the uploads crossing it; a block is done when
// its last upload is, and the next block starts in its place. It leaves
// out everything but the links: hashing, round trips, TCP's ramp-up and
// the write's lag replacements.
type writeModel struct {
	servers  []float64 // link rates, in units of R
	client   float64
	n        int
	inFlight int
	// spread picks a block's servers: "probe" the first n in its probe
	// order (a random permutation here); "least" the n with the fewest
	// uploads in flight among the first n+1 in probe order.
	spread string
}

// upload is one upload in flight: its server and the part of the block
// still to send.
type upload struct {
	server int
	left   float64
}

// run puts blocks blocks (the seeded rng standing in for their hashes)
// and returns the data rate, in units of R, and the share of blocks
// placed off their first n servers in probe order.
func (m writeModel) run(blocks int, rng *rand.Rand) (rate, moved float64) {
	var active [][]upload
	started, now, off := 0, 0.0, 0
	for done := 0; done < blocks; {
		for len(active) < m.inFlight && started < blocks {
			ups, placedOff := m.place(rng, active)
			active = append(active, ups)
			started++
			if placedOff {
				off++
			}
		}
		rates := m.share(active)
		dt := math.Inf(1)
		for b, ups := range active {
			for u, up := range ups {
				dt = min(dt, up.left/rates[b][u])
			}
		}
		now += dt
		var still [][]upload
		for b, ups := range active {
			var left []upload
			for u, up := range ups {
				if up.left -= dt * rates[b][u]; up.left > 1e-12 {
					left = append(left, up)
				}
			}
			if len(left) == 0 {
				done++
			} else {
				still = append(still, left)
			}
		}
		active = still
	}
	return float64(blocks) / now, float64(off) / float64(blocks)
}

// place picks a new block's servers, and reports whether they are not
// the first n in its probe order.
func (m writeModel) place(rng *rand.Rand, active [][]upload) ([]upload, bool) {
	order := rng.Perm(len(m.servers))
	first := slices.Clone(order[:m.n])
	if m.spread == "least" {
		load := make([]int, len(m.servers))
		for _, ups := range active {
			for _, up := range ups {
				load[up.server]++
			}
		}
		head := order[:min(m.n+1, len(order))]
		slices.SortStableFunc(head, func(a, b int) int { return load[a] - load[b] })
	}
	ups := make([]upload, m.n)
	for i := range ups {
		ups[i] = upload{server: order[i], left: 1}
	}
	chosen := slices.Clone(order[:m.n])
	slices.Sort(first)
	slices.Sort(chosen)
	return ups, !slices.Equal(first, chosen)
}

// share returns each upload's rate: max-min fair over the client's link
// and the servers' links (progressive filling).
func (m writeModel) share(active [][]upload) [][]float64 {
	rates := make([][]float64, len(active))
	frozen := make([][]bool, len(active))
	for b, ups := range active {
		rates[b], frozen[b] = make([]float64, len(ups)), make([]bool, len(ups))
	}
	for {
		// The smallest equal raise that fills some link.
		clientUsed, clientFree := 0.0, 0
		used, free := make([]float64, len(m.servers)), make([]int, len(m.servers))
		for b, ups := range active {
			for u, up := range ups {
				clientUsed += rates[b][u]
				used[up.server] += rates[b][u]
				if !frozen[b][u] {
					clientFree++
					free[up.server]++
				}
			}
		}
		if clientFree == 0 {
			return rates
		}
		step := (m.client - clientUsed) / float64(clientFree)
		for s, r := range m.servers {
			if free[s] > 0 {
				step = min(step, (r-used[s])/float64(free[s]))
			}
		}
		full := make([]bool, len(m.servers))
		for s, r := range m.servers {
			full[s] = free[s] > 0 && used[s]+step*float64(free[s]) >= r-1e-12
		}
		clientFull := clientUsed+step*float64(clientFree) >= m.client-1e-12
		for b, ups := range active {
			for u, up := range ups {
				if !frozen[b][u] {
					rates[b][u] += step
					frozen[b][u] = clientFull || full[up.server]
				}
			}
		}
	}
}

// TestWriteModel prints the model's put rate, as a fraction of
// PutLimit, for the fast-client scenario (client 4R, five servers at R,
// N=2) by blocks in flight, file size and spread. Run it with
// -netbed.model; it asserts nothing.
func TestWriteModel(t *testing.T) {
	if !*runModel {
		t.Skip("run with -netbed.model")
	}
	servers := []int64{1, 1, 1, 1, 1}
	var b strings.Builder
	b.WriteString("| blocks in flight | spread | 8 blocks | 32 blocks | 1000 blocks | blocks off their probe-order places |\n|---|---|---|---|---|---|\n")
	for _, inFlight := range []int{2, 4, 6, 8, 12} {
		for _, spread := range []string{"probe", "least"} {
			m := writeModel{servers: []float64{1, 1, 1, 1, 1}, client: 4, n: 2, inFlight: inFlight, spread: spread}
			fmt.Fprintf(&b, "| %d | %s |", inFlight, spread)
			var moved float64
			for _, blocks := range []int{8, 32, 1000} {
				var sum float64
				const trials = 200
				for i := range trials {
					rate, off := m.run(blocks, rand.New(rand.NewPCG(uint64(i), uint64(blocks))))
					sum += rate
					moved = off // of the longest run
				}
				fmt.Fprintf(&b, " %.2f |", sum/trials/(PutLimit(4, servers, 2, blocks)*8))
			}
			fmt.Fprintf(&b, " %.2f |\n", moved)
		}
	}
	t.Logf("model put rate / limit, client 4R, 5 servers at R, N=2, mean of 200 trials:\n%s", b.String())
}
