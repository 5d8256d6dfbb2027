// Package bytesize reads and writes byte counts as the command line
// takes them: 1000, 64M, 10GiB, 2TB.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse parses a byte count such as 1000, 10G, 512MiB or 2TB: K, M, G,
// T (optionally followed by "iB") are powers of 1024, KB, MB, GB, TB
// powers of 1000, and a bare B is bytes. Negative counts are refused.
func Parse(s string) (int64, error) {
	num := strings.TrimRight(s, "KMGTiBkmgtb")
	suffix := strings.ToUpper(s[len(num):])
	mult := int64(1)
	if suffix != "" && suffix != "B" {
		exp := strings.IndexByte("KMGT", suffix[0]) + 1
		if exp == 0 {
			return 0, fmt.Errorf("unknown size suffix in %q", s)
		}
		base := int64(1024)
		switch suffix[1:] {
		case "", "IB":
		case "B":
			base = 1000
		default:
			return 0, fmt.Errorf("unknown size suffix in %q", s)
		}
		for range exp {
			mult *= base
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}

// Format writes n with the largest of the suffixes K, M, G, T (powers
// of 1024) that divides it, as Parse reads it back; a negative n gets a
// leading "-".
func Format(n int64) string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	suffix := ""
	for _, s := range []string{"K", "M", "G", "T"} {
		if n == 0 || n%1024 != 0 {
			break
		}
		n, suffix = n/1024, s
	}
	return sign + strconv.FormatInt(n, 10) + suffix
}
