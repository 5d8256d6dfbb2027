package bytesize

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64 // -1: an error
	}{
		{"0", 0}, {"1000", 1000}, {"10K", 10 << 10}, {"10G", 10 << 30}, {"10GiB", 10 << 30}, {"10GB", 10e9},
		{"2t", 2 << 40}, {"64M", 64 << 20}, {"5B", 5}, {"1MB", 1e6},
		{"", -1}, {"G", -1}, {"-1", -1}, {"1.5G", -1}, {"10X", -1}, {"10KiBB", -1}, {"99999999999T", -1},
	} {
		got, err := Parse(tt.in)
		switch {
		case tt.want < 0 && err == nil:
			t.Errorf("Parse(%q) = %d, want an error", tt.in, got)
		case tt.want >= 0 && (err != nil || got != tt.want):
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{64 << 10, "64K"}, {1000, "1000"}, {0, "0"}, {-1, "-1"}, {3 << 30, "3G"}, {1536, "1536"}, {2 << 40, "2T"}, {-5 << 20, "-5M"},
	} {
		if got := Format(tt.n); got != tt.want {
			t.Errorf("Format(%d) = %q, want %q", tt.n, got, tt.want)
		}
		if back, err := Parse(strings.TrimPrefix(Format(tt.n), "-")); err != nil || (back != tt.n && back != -tt.n) {
			t.Errorf("Format(%d) does not parse back: %d, %v", tt.n, back, err)
		}
	}
}
