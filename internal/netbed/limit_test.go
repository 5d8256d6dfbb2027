package netbed

import (
	"math"
	"testing"
)

func TestLimits(t *testing.T) {
	const r = 200 * Mbit
	tests := []struct {
		name    string
		client  int64
		servers []int64
		n       int
		blocks  int
		put     float64 // MB/s
		get     float64 // MB/s
	}{
		{"all R", r, []int64{r, r, r, r, r}, 2, 0, 12.5, 25},
		{"client 4R", 4 * r, []int64{r, r, r, r, r}, 2, 0, 50, 100},
		{"client 8R", 8 * r, []int64{r, r, r, r, r}, 2, 0, 62.5, 125},
		{"one server R/10", r, []int64{r, r, r, r, r / 10}, 2, 0, 12.5, 25},
		{"fast client, one server R/10", 8 * r, []int64{r, r, r, r, r / 10}, 2, 0, 51.25, 102.5},
		// Two fast servers and one slow at N=3: every block needs the
		// slow one, so it sets the pace.
		{"n = servers", 8 * r, []int64{r, r, r / 10}, 3, 0, 2.5, 52.5},
		// One server much faster than the others cannot take two copies.
		{"one fast server", 8 * r, []int64{8 * r, r, r}, 2, 0, 50, 200},
		{"n too big", r, []int64{r}, 2, 0, 0, 25},
		{"n zero", r, []int64{r}, 0, 0, 0, 25},
		// One block: only the fastest N servers, or one, take part.
		{"one block", 4 * r, []int64{r, r, r, r, r}, 2, 1, 25, 25},
		{"one block, one slow", 4 * r, []int64{r, r, r, r, r / 10}, 2, 1, 25, 25},
		{"two blocks, fast client", 8 * r, []int64{r, r, r, r, r}, 2, 2, 50, 50},
		{"blocks beyond servers", 8 * r, []int64{r, r, r}, 2, 100, 37.5, 75},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PutLimit(tt.client, tt.servers, tt.n, tt.blocks) / 1e6; math.Abs(got-tt.put) > 1e-6 {
				t.Errorf("PutLimit = %.6f MB/s, want %.6f", got, tt.put)
			}
			if got := GetLimit(tt.client, tt.servers, tt.blocks) / 1e6; math.Abs(got-tt.get) > 1e-6 {
				t.Errorf("GetLimit = %.6f MB/s, want %.6f", got, tt.get)
			}
		})
	}
}
