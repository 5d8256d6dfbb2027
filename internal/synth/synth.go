// Package synth makes synthetic Keep clusters of any size for scale
// benchmarks of keep balance and keep check: block servers that serve a
// generated inventory through the real management API (GET /mounts,
// GET /mounts/UUID/blocks, GET /index), and manifest files of the live
// set.
//
// Everything follows from Config: block i's hash is the MD5 of the seed
// and i, its size and mtimes are derived from it, and what becomes of it
// (stored in its ideal places, misplaced, short of a copy, or garbage)
// follows from i modulo 100. No hash is stored: each index and manifest
// is generated as it is written. The one thing kept per block is a byte
// naming the servers that hold it (their probe order costs a few MD5s
// per block to work out), so a cluster of N blocks costs N bytes.
package synth

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/keepproject/keep/keepclient"
)

// Config describes a synthetic cluster.
type Config struct {
	// Blocks is how many distinct blocks there are: stored, referenced
	// or both.
	Blocks int
	// Servers is the number of block servers, each with one volume, from
	// 3 to 8 (a misplaced copy lies on the third server in probe
	// order). 0 means 4.
	Servers int
	// Seed makes other hashes; the same Seed gives the same cluster.
	Seed uint64
	// Percentages of the blocks (by i modulo 100, so exact for every
	// 100 blocks): Garbage blocks are stored twice and referenced by no
	// manifest; Short blocks are referenced and stored once, in the
	// first place of their probe order; Misplaced blocks are referenced
	// and stored twice, in the first and third places. The rest are
	// referenced and stored in their two ideal places.
	Garbage, Short, Misplaced int
	// PerManifest is how many blocks each manifest file references. 0
	// means 10,000.
	PerManifest int
}

// Issue20 is the cluster of issue 20's "before" figures: four servers,
// two copies per block, 5% misplaced, 1% short, 2% garbage.
func Issue20(blocks int) Config {
	return Config{Blocks: blocks, Servers: 4, Garbage: 2, Short: 1, Misplaced: 5, PerManifest: 10000}
}

// Kind is what becomes of a block in a synthetic cluster.
type Kind uint8

// The kinds of block.
const (
	Placed    Kind = iota // referenced, two copies in its ideal places
	Misplaced             // referenced, two copies, one not in an ideal place
	Short                 // referenced, one copy (in an ideal place)
	Garbage               // two copies, referenced by no manifest
)

// Counts are a cluster's numbers of blocks of each kind, and what keep
// balance --gc must make of them.
type Counts struct {
	Blocks, Placed, Misplaced, Short, Garbage int
	Referenced                                int // Placed + Misplaced + Short
	Copies                                    int // copies the indexes list
	Pulls                                     int // one per misplaced or short block
	Trash                                     int // every copy of garbage (all are old)
}

// Cluster is a generated cluster: its services (named, not yet
// listening: see Serve) and the servers holding each block.
type Cluster struct {
	cfg      Config
	services []keepclient.Service
	suffixes [][]byte // the probe-order suffix of each service's uuid
	holders  []uint8  // bit s set: server s holds block i
}

// MountUUID returns the uuid of server s's volume.
func MountUUID(s int) string { return fmt.Sprintf("zzzzz-nyw5e-%015d", s) }

// New generates the cluster cfg describes. It works out every block's
// holders, on all CPUs.
func New(cfg Config) (*Cluster, error) {
	if cfg.Servers == 0 {
		cfg.Servers = 4
	}
	if cfg.PerManifest == 0 {
		cfg.PerManifest = 10000
	}
	switch {
	case cfg.Blocks < 0:
		return nil, fmt.Errorf("synthetic cluster: %d blocks", cfg.Blocks)
	case cfg.Servers < 3 || cfg.Servers > 8:
		return nil, fmt.Errorf("synthetic cluster: %d servers, not 3 to 8", cfg.Servers)
	case cfg.Garbage < 0 || cfg.Short < 0 || cfg.Misplaced < 0 || cfg.Garbage+cfg.Short+cfg.Misplaced > 100:
		return nil, errors.New("synthetic cluster: the percentages must be at least 0 and add up to at most 100")
	case cfg.PerManifest < 0:
		return nil, fmt.Errorf("synthetic cluster: %d blocks per manifest", cfg.PerManifest)
	}
	c := &Cluster{cfg: cfg, holders: make([]uint8, cfg.Blocks)}
	for s := range cfg.Servers {
		svc := keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", s), Host: "127.0.0.1", Port: 1, Type: keepclient.TypeDisk}
		c.services = append(c.services, svc)
		suffix := svc.UUID
		if len(suffix) > 15 {
			suffix = suffix[len(suffix)-15:]
		}
		c.suffixes = append(c.suffixes, []byte(suffix))
	}
	workers := runtime.GOMAXPROCS(0)
	chunk := (cfg.Blocks + workers - 1) / max(workers, 1)
	var wg sync.WaitGroup
	for lo := 0; lo < cfg.Blocks; lo += chunk {
		hi := min(lo+chunk, cfg.Blocks)
		wg.Go(func() {
			var hexHash [32]byte
			order := make([]int, cfg.Servers)
			for i := lo; i < hi; i++ {
				c.hexHash(i, hexHash[:])
				c.probeOrder(hexHash[:], order)
				var bits uint8
				switch c.Kind(i) {
				case Placed, Garbage:
					bits = 1<<order[0] | 1<<order[1]
				case Misplaced:
					bits = 1<<order[0] | 1<<order[2]
				case Short:
					bits = 1 << order[0]
				}
				c.holders[i] = bits
			}
		})
	}
	wg.Wait()
	return c, nil
}

// Config returns the cluster's configuration, with its defaults filled
// in.
func (c *Cluster) Config() Config { return c.cfg }

// Kind returns what becomes of block i.
func (c *Cluster) Kind(i int) Kind {
	r := i % 100
	switch {
	case r < c.cfg.Garbage:
		return Garbage
	case r < c.cfg.Garbage+c.cfg.Short:
		return Short
	case r < c.cfg.Garbage+c.cfg.Short+c.cfg.Misplaced:
		return Misplaced
	}
	return Placed
}

// Counts returns the cluster's numbers of blocks of each kind.
func (c *Cluster) Counts() Counts {
	n := c.cfg.Blocks
	// inRange counts the i < n with i%100 in [lo, hi).
	inRange := func(lo, hi int) int {
		return n/100*(hi-lo) + min(max(n%100-lo, 0), hi-lo)
	}
	g, s, m := c.cfg.Garbage, c.cfg.Short, c.cfg.Misplaced
	k := Counts{Blocks: n, Garbage: inRange(0, g), Short: inRange(g, g+s), Misplaced: inRange(g+s, g+s+m)}
	k.Placed = n - k.Garbage - k.Short - k.Misplaced
	k.Referenced = n - k.Garbage
	k.Copies = 2*n - k.Short
	k.Pulls = k.Misplaced + k.Short
	k.Trash = 2 * k.Garbage
	return k
}

// Hash returns block i's hash, in hex.
func (c *Cluster) Hash(i int) string {
	var h [32]byte
	c.hexHash(i, h[:])
	return string(h[:])
}

// hexHash writes block i's hash, in hex, to dst.
func (c *Cluster) hexHash(i int, dst []byte) {
	var in [16]byte
	binary.BigEndian.PutUint64(in[:8], c.cfg.Seed)
	binary.BigEndian.PutUint64(in[8:], uint64(i))
	sum := md5.Sum(in[:])
	hex.Encode(dst, sum[:])
}

// Size returns block i's size: from 1 byte to 64 MiB, derived from its
// hash.
func Size(hexHash []byte) int64 {
	var b [4]byte
	hex.Decode(b[:], hexHash[:8])
	return 1 + int64(binary.BigEndian.Uint32(b[:])%(64<<20))
}

// mtimeBase is when the synthetic blocks were written: 2020-01-01 UTC,
// long older than any signing TTL.
const mtimeBase = 1577836800 * int64(1e9)

// Mtime returns the mtime of block i's copy on server s, in UnixNano:
// every copy's differs, so none looks like one file seen twice.
func Mtime(i, s int) int64 { return mtimeBase + int64(i)*1000 + int64(s) }

// probeOrder writes to order the servers in hexHash's probe order, as
// keepclient.ProbeOrder sorts them (descending MD5 of the hash and the
// last 15 characters of the service uuid; ties in list order), without
// allocating.
func (c *Cluster) probeOrder(hexHash []byte, order []int) {
	var sums [8][md5.Size]byte
	var buf [64]byte
	for s, suffix := range c.suffixes {
		n := copy(buf[:], hexHash)
		n += copy(buf[n:], suffix)
		sums[s] = md5.Sum(buf[:n])
	}
	for s := range order {
		order[s] = s
	}
	// Insertion sort, stable: a server moves before another only if its
	// weight is greater.
	for a := 1; a < len(order); a++ {
		for b := a; b > 0 && string(sums[order[b]][:]) > string(sums[order[b-1]][:]); b-- {
			order[b], order[b-1] = order[b-1], order[b]
		}
	}
}

// Holds reports whether server s holds block i.
func (c *Cluster) Holds(i, s int) bool { return c.holders[i]&(1<<s) != 0 }
