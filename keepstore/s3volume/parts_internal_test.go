package s3volume

import (
	"fmt"
	"strings"
	"testing"
)

// reach is the hash that is frac of the way through prefix's hashes.
func reach(prefix string, frac float64) string {
	return prefix + (fmt.Sprintf("%012x", uint64(frac*(1<<48))) + strings.Repeat("0", 32))[:32-len(prefix)]
}

func TestPartDigitsFor(t *testing.T) {
	tests := []struct {
		name       string
		prefix     string
		last       string
		keys, page int
		want       int
	}{
		{"no block in the page", "", "", 1000, 1000, 1},
		{"2,000 blocks", "", reach("", 0.5), 1000, 1000, 1},
		{"64,000 blocks: parts of 4,000", "", reach("", 1.0/64), 1000, 1000, 1},
		{"65,000 blocks", "", reach("", 1.0/65), 1000, 1000, 2},
		{"10M blocks", "", reach("", 1e-4), 1000, 1000, 3},
		{"16M blocks: parts of 4,000", "", reach("", 1.0/16384), 1000, 1000, 3},
		{"100M blocks", "", reach("", 1e-5), 1000, 1000, 4},
		{"10G blocks: at most 4 digits", "", reach("", 1e-7), 1000, 1000, 4},
		{"the first page reached no further", "", reach("", 0), 1000, 1000, 4},
		{"pages of 7: 700 blocks", "", reach("", 0.01), 7, 7, 2},
		{"a prefix's 10,000 blocks", "abc", reach("abc", 0.1), 1000, 1000, 1},
		{"a prefix's 100,000 blocks", "abc", reach("abc", 0.01), 1000, 1000, 2},
		{"31 digits of prefix", strings.Repeat("0", 31), strings.Repeat("0", 32), 1000, 1000, 1},
		{"30 digits of prefix", strings.Repeat("0", 30), strings.Repeat("0", 32), 1000, 1000, 2},
	}
	for _, tt := range tests {
		if got := partDigitsFor(tt.prefix, tt.last, tt.keys, tt.page); got != tt.want {
			t.Errorf("%s: partDigitsFor(%q, %q, %d, %d) = %d, want %d", tt.name, tt.prefix, tt.last, tt.keys, tt.page, got, tt.want)
		}
	}
}

func TestHexDigits(t *testing.T) {
	for _, tt := range []struct {
		i, n int
		want string
	}{{0, 1, "0"}, {15, 1, "f"}, {0x2a, 2, "2a"}, {0xabc, 3, "abc"}, {1, 4, "0001"}} {
		if got := hexDigits(tt.i, tt.n); got != tt.want {
			t.Errorf("hexDigits(%d, %d) = %q, want %q", tt.i, tt.n, got, tt.want)
		}
	}
}
