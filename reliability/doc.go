// Package reliability holds no code of its own: it is the suite that
// checks that keep servers survive hostile and faulty conditions. The
// tests build the keep binary once and run real "keep server", "keep
// proxy", "keep put" and "keep get" processes on loopback, each server on
// a port the kernel picks (--listen 127.0.0.1:0 --addr-file FILE).
//
//   - TestCrashSafety kills a block server with SIGKILL at random moments
//     during PUTs and checks its volume after each restart: every block
//     file has the MD5 its name says, every acknowledged block reads back
//     byte-correct, temporary files are never served, and stale ones are
//     removed when the volume is opened again.
//   - TestChaos puts files at --replicas 2 on 5 servers, directly and
//     through "keep proxy", while a controller kills and restarts a
//     random server every 1 to 3 seconds and once fills one to capacity.
//     Every put either succeeds with each block on at least 2 servers
//     (exactly 2 unless a holder was killed mid-write) and reads back
//     byte-correct, or fails naming the blocks that fell short.
//   - TestLoad runs 8 concurrent puts of files sharing blocks at N = 2 to
//     5 replicas on 5 servers and checks every block has at least N copies
//     and the servers' peak resident memory stays bounded.
//
// How to run:
//
//	go test -race ./reliability            # the CI variant, about a minute
//	go test -v ./reliability -run Chaos    # with the summary lines
//	go test ./reliability -long -v -timeout 30m   # long variants
//
// -long runs 100 crash iterations, 256 MiB chaos puts for several
// minutes and larger load rounds. -short skips the whole suite.
// docs/reliability.md describes each test and the figures measured.
package reliability
