package transfer

import (
	"fmt"
	"testing"
)

func TestLayout(t *testing.T) {
	tests := []struct {
		sizes  []int64
		blocks string
		segs   string
	}{
		{nil, "[]", "[]"},
		{[]int64{0, 0}, "[]", "[[] []]"},
		{[]int64{3, 4}, "[{7 [{0 0 3} {1 0 4}]}]", "[[{0 0 3}] [{0 3 4}]]"},
		{[]int64{10}, "[{10 [{0 0 10}]}]", "[[{0 0 10}]]"},
		{[]int64{25}, "[{10 [{0 0 10}]} {10 [{0 10 10}]} {5 [{0 20 5}]}]", "[[{0 0 10} {1 0 10} {2 0 5}]]"},
		{[]int64{6, 0, 6, 8}, "[{10 [{0 0 6} {2 0 4}]} {10 [{2 4 2} {3 0 8}]}]", "[[{0 0 6}] [] [{0 6 4} {1 0 2}] [{1 2 8}]]"},
	}
	for _, tt := range tests {
		blocks, segs := layout(tt.sizes, 10)
		if fmt.Sprint(blocks) != tt.blocks || fmt.Sprint(segs) != tt.segs {
			t.Errorf("layout(%v) = %v, %v; want %s, %s", tt.sizes, blocks, segs, tt.blocks, tt.segs)
		}
	}
}
