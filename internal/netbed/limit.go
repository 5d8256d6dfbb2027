package netbed

import (
	"slices"
)

// PutLimit returns the fastest a client can store data of blocks
// blocks with n copies of every block on distinct servers, in bytes per
// second, given the rates of the client's link and of the servers'
// links in bits per second (each the same both ways); blocks <= 0
// means many.
//
// Every byte leaves the client n times, so the client's link allows
// client/n. At a data rate x server i can take at most min(r_i, x) (it
// stores each block once), so the servers allow the largest x with
// sum_i min(r_i, x) >= n*x: with equal servers, sum_i r_i / n. Only
// blocks*n servers can take part, so the sum is over the fastest
// blocks*n. PutLimit returns the smaller of the two limits, or 0 if n
// is not between 1 and the number of servers.
func PutLimit(client int64, servers []int64, n, blocks int) float64 {
	if n < 1 || n > len(servers) {
		return 0
	}
	rs := fastest(servers, blocks*n)
	take := func(x float64) float64 {
		var sum float64
		for _, r := range rs {
			sum += min(float64(r), x)
		}
		return sum
	}
	// take(x) - n*x is concave and 0 at 0: bisect for its last zero.
	lo, hi := 0.0, float64(sum(rs))/float64(n)
	for range 100 {
		mid := (lo + hi) / 2
		if take(mid) >= float64(n)*mid {
			lo = mid
		} else {
			hi = mid
		}
	}
	return min(float64(client)/float64(n), lo) / 8
}

// GetLimit returns the fastest a client can read back data of blocks
// blocks, in bytes per second, given the rates of the client's link
// and of the servers' links in bits per second; blocks <= 0 means
// many. Every byte is read once, each block from one server, so the
// smaller of the client's link and the links of the fastest blocks
// servers together. (Which servers hold which blocks can lower it
// further; the copies are spread in probe order, so over many blocks
// evenly.)
func GetLimit(client int64, servers []int64, blocks int) float64 {
	return float64(min(client, sum(fastest(servers, blocks)))) / 8
}

// fastest returns the k highest rates, or all of them if k <= 0.
func fastest(rates []int64, k int) []int64 {
	rs := slices.Sorted(slices.Values(rates))
	slices.Reverse(rs)
	if k > 0 && k < len(rs) {
		rs = rs[:k]
	}
	return rs
}

// sum returns the sum of rates.
func sum(rates []int64) int64 {
	var s int64
	for _, r := range rates {
		s += r
	}
	return s
}
