package reliability

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/manifest"
)

// chaosConfig sizes TestChaos.
type chaosConfig struct {
	servers  int
	fileSize int // bytes per keep put
	runs     int // puts per variant
	minGap   time.Duration
	maxGap   time.Duration
	fillAt   int // the kill that restarts a server full
}

func chaosSizes() chaosConfig {
	if *long {
		return chaosConfig{servers: 5, fileSize: 256 << 20, runs: 40, minGap: time.Second, maxGap: 3 * time.Second, fillAt: 3}
	}
	return chaosConfig{servers: 5, fileSize: 128 << 20, runs: 6, minGap: time.Second, maxGap: 3 * time.Second, fillAt: 2}
}

// chaosStats counts what one variant of TestChaos saw.
type chaosStats struct {
	runs, ok, failed int
	killsInPuts      int
	blocks, copies   int
	over             int // blocks on more than 2 servers
	shortNamed       int // short blocks failed puts named
	failedAllThere   int // failed puts whose blocks all had 2 copies
}

// TestChaos runs keep put (the real binary, --replicas 2) on 5 real
// servers, directly and through keep proxy, while a controller kills a
// random server with SIGKILL every 1 to 3 s and restarts it on the same
// port and volume, and once restarts one full. After every put, it
// counts the copies of each block in the volume directories and checks
// each copy's MD5:
//
//   - a put that succeeds must have every block on at least 2 servers,
//     and on exactly 2 unless one of its holders was killed during the
//     put after its copy was written (the one case no client can see:
//     stored, then the answer lost); its manifest must name those blocks,
//     and keep get must read the file back byte-correct;
//   - a put that fails must print no manifest and name on stderr every
//     block that has fewer than 2 copies.
func TestChaos(t *testing.T) {
	proctest.Binary(t)
	cfg := chaosSizes()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	base := randomBytes(int64(cfg.fileSize))
	for i, variant := range []string{"direct", "proxy"} {
		t.Run(variant, func(t *testing.T) {
			c := startCluster(t, cfg.servers)
			svcFile := c.svcFile
			if variant == "proxy" {
				svcFile = c.startProxy(t)
			}
			ctl := startController(t, c, seed+uint64(i), cfg.minGap, cfg.maxGap, cfg.fillAt)
			var st chaosStats
			dir := t.TempDir()
			for run := 0; run < cfg.runs && !t.Failed(); run++ {
				stamp(base, seed<<8|uint64(i)<<7|uint64(run))
				chaosRun(t, c, ctl, svcFile, dir, base, &st)
			}
			ctl.halt()
			kills, cut, fills, lost := ctl.counts()
			t.Logf("chaos %s: %d runs of %d MiB at --replicas 2 on %d servers: %d succeeded, %d failed naming their %d short blocks (%d failed runs had every block on 2 servers anyway); %d kills (%d during puts, cutting %d uploads mid-body), %d fill, %d restarts given up; %d blocks, %d copies on disk, %d blocks on more than 2 servers (each with a holder killed mid-write)",
				variant, st.runs, cfg.fileSize>>20, cfg.servers, st.ok, st.failed, st.shortNamed, st.failedAllThere,
				kills, st.killsInPuts, cut, fills, lost, st.blocks, st.copies, st.over)
			if st.ok == 0 {
				t.Error("no put succeeded: nothing was read back")
			}
		})
	}
}

// chaosRun puts data as one file, checks the copies on disk and reads
// the file back, as TestChaos describes, and removes its blocks.
func chaosRun(t *testing.T, c *cluster, ctl *controller, svcFile, dir string, data []byte, st *chaosStats) {
	t.Helper()
	src := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	hashes := blockHashes(data)
	dirs := c.dirs()
	defer func() {
		for _, h := range hashes {
			removeBlock(dirs, h)
		}
	}()

	start := time.Now()
	stdout, stderr, err := proctest.Run(t, c.env, nil, "put", "--replicas", "2", "--no-cache", "--services", svcFile, src)
	kills := ctl.killsBetween(start, time.Now())
	st.runs++
	st.killsInPuts += len(kills)

	var short []string
	lostHolder := false
	for _, h := range hashes {
		hs, herr := holders(dirs, h)
		if herr != nil {
			t.Errorf("run %d: block %s: %v", st.runs, h, herr)
		}
		st.blocks++
		st.copies += len(hs)
		for _, x := range hs {
			lostHolder = lostHolder || ctl.isLost(x.server)
		}
		switch {
		case len(hs) < 2:
			short = append(short, h)
		case len(hs) > 2:
			st.over++
			if !killedAfterWrite(hs, kills) {
				t.Errorf("run %d: block %s on %d servers %v, but none of them was killed during the put after writing it", st.runs, h, len(hs), hs)
			}
		}
	}

	if err != nil {
		st.failed++
		st.shortNamed += len(short)
		if len(short) == 0 {
			st.failedAllThere++
		}
		t.Logf("run %d: keep put failed (%v) with %d short blocks; stderr:\n%s", st.runs, err, len(short), stderr)
		if stdout != "" {
			t.Errorf("run %d: failed keep put printed a manifest:\n%s", st.runs, stdout)
		}
		for _, h := range short {
			if !strings.Contains(stderr, h) {
				t.Errorf("run %d: keep put failed without naming short block %s", st.runs, h)
			}
		}
		return
	}
	st.ok++
	for _, h := range short {
		t.Errorf("run %d: keep put succeeded, but block %s is on fewer than 2 servers", st.runs, h)
	}
	checkManifestBlocks(t, stdout, hashes)
	mf := filepath.Join(dir, "manifest.txt")
	if err := os.WriteFile(mf, []byte(stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	back := filepath.Join(dir, "back.bin")
	defer os.Remove(back)
	if _, stderr, err := proctest.Run(t, c.env, nil, "get", "--services", svcFile, "-o", back, mf); err != nil {
		if lostHolder {
			t.Logf("run %d: keep get failed with a holder given up: %v\n%s", st.runs, err, stderr)
			return
		}
		t.Errorf("run %d: keep get: %v\n%s", st.runs, err, stderr)
		return
	}
	got, err := os.ReadFile(back)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("run %d: file read back differs (%d bytes, want %d; %v)", st.runs, len(got), len(data), err)
	}
}

// killedAfterWrite reports whether one of the holders was killed after
// its copy was last written, which is how a server can hold a block its
// client counted as failed.
func killedAfterWrite(hs []holder, kills []killEvent) bool {
	for _, h := range hs {
		for _, k := range kills {
			if k.server == h.server && !h.mtime.After(k.at) {
				return true
			}
		}
	}
	return false
}

// checkManifestBlocks checks that manifest text lists exactly the blocks
// with the given hashes. Their order is not checked: the manifest is
// normalized (files sorted by name), the blocks in the order of the files.
func checkManifestBlocks(t *testing.T, text string, hashes []string) {
	t.Helper()
	m, err := manifest.Parse(text)
	if err != nil {
		t.Errorf("keep put printed a bad manifest %q: %v", text, err)
		return
	}
	var got []string
	for _, b := range m.Blocks() {
		got = append(got, b.Hash)
	}
	want := slices.Clone(hashes)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("manifest blocks %v, want %v", got, want)
	}
}
