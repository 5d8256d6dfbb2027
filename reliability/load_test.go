package reliability

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
)

// loadConfig sizes TestLoad. Either sharedSize is blockSize, so that
// every shared file is exactly one block wherever it falls in a put, or
// each put stores one shared file and nothing else (sharedPerPut 1,
// uniqueSize 0), so that its blocks are the file's: a smaller file
// followed by another would share a block with it.
type loadConfig struct {
	servers      int
	puts         int   // concurrent keep puts per round
	shared       int   // distinct files the puts share
	sharedSize   int64 // bytes of each
	sharedPerPut int   // shared files each put stores
	uniqueSize   int64 // bytes of each put's own file; 0 for none
	maxRSS       int64 // bound on each server's peak resident memory
}

func loadSizes() loadConfig {
	if *long {
		return loadConfig{servers: 5, puts: 8, shared: 4, sharedSize: blockSize, sharedPerPut: 2, uniqueSize: 16 << 20, maxRSS: 2 << 30}
	}
	return loadConfig{servers: 5, puts: 8, shared: 4, sharedSize: 24 << 20, sharedPerPut: 1, maxRSS: 2 << 30}
}

// loadPut is one keep put of a round and what came of it.
type loadPut struct {
	args   []string
	want   []string // block hashes
	stdout string
	stderr string
	err    error
}

// TestLoad runs rounds of 8 concurrent keep puts at N = 2, 3, 4 and 5
// replicas on 5 real servers. The puts share files (so several of them
// write the same block to the same servers at once); in the long variant
// each also stores a file of its own. Every put must succeed, list the
// expected blocks, and leave each block on at least N servers with the
// right MD5. (More than N is possible and counted: a put may abandon a
// lagging upload to a server that another put's upload of the same block
// then completes.) At the end each server's peak resident memory
// (VmHWM) must be below a generous bound: servers stream blocks to disk,
// so concurrent uploads must not add up in memory.
func TestLoad(t *testing.T) {
	proctest.Binary(t)
	cfg := loadSizes()
	c := startCluster(t, cfg.servers)
	dir := t.TempDir()
	shared := make([][]byte, cfg.shared)
	for k := range shared {
		shared[k] = randomBytes(cfg.sharedSize)
	}
	unique := randomBytes(cfg.uniqueSize)
	seed := uint64(time.Now().UnixNano())
	var blocks, refs, copies, over int
	for n := 2; n <= cfg.servers; n++ {
		puts := loadRound(t, c, cfg, dir, n, shared, unique, seed+uint64(n<<16))
		distinct := map[string]bool{}
		for i, p := range puts {
			if p.err != nil {
				t.Errorf("N=%d: put %d: %v\n%s", n, i, p.err, p.stderr)
				continue
			}
			checkManifestBlocks(t, p.stdout, p.want)
			for _, h := range p.want {
				distinct[h] = true
				refs++
			}
		}
		for h := range distinct {
			hs, err := holders(c.dirs(), h)
			if err != nil {
				t.Errorf("N=%d: block %s: %v", n, h, err)
			}
			switch {
			case len(hs) < n:
				t.Errorf("N=%d: block %s on %d servers %v", n, h, len(hs), hs)
			case len(hs) > n:
				over++
				t.Logf("N=%d: block %s on %d servers %v", n, h, len(hs), hs)
			}
			blocks++
			copies += len(hs)
			removeBlock(c.dirs(), h)
		}
	}
	if blocks >= refs {
		t.Errorf("%d distinct blocks for %d block references: the puts shared nothing", blocks, refs)
	}

	var peaks []int64
	for _, s := range c.servers {
		rss, err := s.running().PeakRSS()
		if err != nil {
			t.Fatal(err)
		}
		peaks = append(peaks, rss>>20)
		if rss > cfg.maxRSS {
			t.Errorf("server %d peak RSS %d MiB, over %d MiB", s.index, rss>>20, cfg.maxRSS>>20)
		}
	}
	t.Logf("load: %d rounds (N=2..%d) of %d concurrent puts on %d servers, each of %d of %d shared %d MiB files and %d MiB of its own: %d distinct blocks for %d block references, %d copies on disk, %d blocks on more than N servers; server peak RSS (MiB) %v",
		cfg.servers-1, cfg.servers, cfg.puts, cfg.servers, cfg.sharedPerPut, cfg.shared, cfg.sharedSize>>20, cfg.uniqueSize>>20,
		blocks, refs, copies, over, peaks)
}

// loadRound writes the round's files, with stamps from seed so that no
// server holds their blocks yet, and runs cfg.puts keep puts at once at
// n replicas.
func loadRound(t *testing.T, c *cluster, cfg loadConfig, dir string, n int, shared [][]byte, unique []byte, seed uint64) []*loadPut {
	t.Helper()
	var files []string
	var hashes [][]string
	for k, data := range shared {
		stamp(data, seed+uint64(k))
		files = append(files, filepath.Join(dir, fmt.Sprintf("shared-%d.bin", k)))
		hashes = append(hashes, blockHashes(data))
		if err := os.WriteFile(files[k], data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	puts := make([]*loadPut, cfg.puts)
	for i := range puts {
		p := &loadPut{args: []string{"put", "--replicas", strconv.Itoa(n), "--no-cache", "--services", c.svcFile}}
		for j := 0; j < cfg.sharedPerPut; j++ {
			k := (i + j) % cfg.shared
			p.args = append(p.args, files[k])
			p.want = append(p.want, hashes[k]...)
		}
		if len(unique) > 0 {
			stamp(unique, seed+uint64(0x100+i))
			own := filepath.Join(dir, fmt.Sprintf("own-%d.bin", i))
			if err := os.WriteFile(own, unique, 0o644); err != nil {
				t.Fatal(err)
			}
			p.args = append(p.args, own)
			p.want = append(p.want, blockHashes(unique)...)
		}
		puts[i] = p
	}
	var wg sync.WaitGroup
	for _, p := range puts {
		wg.Go(func() { p.stdout, p.stderr, p.err = proctest.Run(t, c.env, nil, p.args...) })
	}
	wg.Wait()
	return puts
}
