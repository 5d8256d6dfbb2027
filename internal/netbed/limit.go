package netbed

// PutLimit returns the fastest a client can store data with n copies
// of every block on distinct servers, in bytes per second, given the
// rates of the client's link and of the servers' links in bits per
// second (each the same both ways). Every byte leaves the client n
// times, so the client's link allows client/n; and at a data rate x
// server i can take at most min(r_i, x) (it stores each block once), so
// the servers allow the largest x with sum_i min(r_i, x) >= n*x. With
// equal servers that is sum_i r_i / n. PutLimit returns the smaller of
// the two, or 0 if n is not between 1 and the number of servers.
func PutLimit(client int64, servers []int64, n int) float64 {
	if n < 1 || n > len(servers) {
		return 0
	}
	take := func(x float64) float64 {
		var sum float64
		for _, r := range servers {
			sum += min(float64(r), x)
		}
		return sum
	}
	// take(x) - n*x is concave and 0 at 0: bisect for its last zero.
	var total float64
	for _, r := range servers {
		total += float64(r)
	}
	lo, hi := 0.0, total/float64(n)
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

// GetLimit returns the fastest a client can read data back, in bytes
// per second, given the rates of the client's link and of the servers'
// links in bits per second: every byte is read once, from one of the
// servers, so the smaller of the client's link and the servers' links
// together. (Which servers hold which blocks can lower it further; the
// copies are spread in probe order, so over many blocks evenly.)
func GetLimit(client int64, servers []int64) float64 {
	var total int64
	for _, r := range servers {
		total += r
	}
	return float64(min(client, total)) / 8
}
