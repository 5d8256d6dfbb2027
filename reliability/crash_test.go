package reliability

import (
	"bytes"
	"context"
	"crypto/md5"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
)

// crashConfig sizes TestCrashSafety.
type crashConfig struct {
	iterations int
	writers    int   // concurrent PUT loops
	maxBlock   int64 // block sizes are log-uniform from 1 KiB to this
}

func crashSizes() crashConfig {
	if *long {
		return crashConfig{iterations: 100, writers: 4, maxBlock: 64 << 20}
	}
	return crashConfig{iterations: 10, writers: 4, maxBlock: 8 << 20}
}

// crashStats counts what TestCrashSafety saw, for its summary line.
type crashStats struct {
	kills, acked, blockFiles, readBack, tmpsLeft, tmpsRemoved, tmpRefused int
}

// TestCrashSafety kills a block server with SIGKILL at random moments
// while several clients PUT blocks to it, and after every kill checks
// the volume on disk and, once the server has started again on it, over
// HTTP:
//
//   - every block file holds the data its name says (MD5);
//   - every block a PUT was answered 200 for is there, byte-correct, and
//     reads back through the restarted server;
//   - temporary files left by interrupted writes are never served: a GET
//     of a temporary file's name fails, and a GET of its hash is 404
//     unless the block was also stored whole;
//   - temporary files left by the kill are gone once the server has
//     opened the volume again: holding the volume's lock, it knows no
//     write of its own is in flight (see also
//     TestRestartRemovesFreshTempFiles).
//
// A SIGKILL does not lose the page cache, so this checks the write
// protocol (temporary file, rename into place, answer last), not fsync.
func TestCrashSafety(t *testing.T) {
	proctest.Binary(t)
	cfg := crashSizes()
	root := t.TempDir()
	env := proctest.Env(t)
	srv, err := newServer(t, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.kill)
	if err := srv.start(env, false); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	hc := &http.Client{}
	t.Cleanup(hc.CloseIdleConnections)

	var st crashStats
	var previous map[string]string // blocks present after the last restart
	for it := 0; it < cfg.iterations && !t.Failed(); it++ {
		acked := writeUntilKilled(t, srv, rng, cfg)
		st.kills++
		st.acked += len(acked)

		tmps := checkCrashedVolume(t, srv.dir, acked, previous, &st)
		if err := srv.start(env, false); err != nil {
			t.Fatal(err)
		}
		previous = checkRestartedServer(t, hc, srv, acked, tmps, &st)
	}
	t.Logf("crash safety: %d kills; %d PUTs acknowledged, all read back; %d block files checked by MD5, %d blocks read back over HTTP; %d temporary files left by kills, %d removed at restart, %d GETs of them refused",
		st.kills, st.acked, st.blockFiles, st.readBack, st.tmpsLeft, st.tmpsRemoved, st.tmpRefused)
	if st.acked == 0 {
		t.Error("no PUT was acknowledged: nothing was checked")
	}
}

// writeUntilKilled runs cfg.writers PUT loops against srv and kills the
// server with SIGKILL after a random number of acknowledged PUTs and a
// random delay, while PUTs are in flight. It returns the blocks whose
// PUT was answered 200, by hash.
func writeUntilKilled(t *testing.T, srv *server, rng *rand.Rand, cfg crashConfig) map[string][]byte {
	t.Helper()
	kc, err := keepclient.New(keepclient.Options{
		Services:  []keepclient.Service{srv.service()},
		Token:     "reliability",
		MaxPasses: 1,  // a PUT cut by the kill fails at once
		DownHold:  -1, // one service: nothing to demote it behind
	})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		acked  = map[string][]byte{}
		killed atomic.Bool
		wg     sync.WaitGroup
	)
	ackc := make(chan struct{}, 1<<16)
	for w := 0; w < cfg.writers; w++ {
		sizes := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		wg.Go(func() {
			for ctx.Err() == nil {
				data := randomBytes(logUniform(sizes, 1<<10, cfg.maxBlock))
				res, err := kc.Put(ctx, data, keepclient.PutOptions{Replicas: 1})
				if err != nil {
					if !killed.Load() {
						t.Errorf("PUT of %d bytes to a healthy server: %v", len(data), err)
					}
					return
				}
				mu.Lock()
				acked[res.Locator.Hash] = data
				mu.Unlock()
				ackc <- struct{}{}
			}
		})
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	want := rng.IntN(2*cfg.writers + 1)
	for range want {
		select {
		case <-ackc:
		case <-allDone:
		}
	}
	sleepRandom(rng, 0, 50*time.Millisecond) // a random moment: workload, not a wait
	killed.Store(true)
	srv.kill()
	cancel()
	<-allDone
	return acked
}

// checkCrashedVolume checks the volume of a killed server and returns
// the temporary files the kill left. It prunes blocks that were already
// checked after an earlier restart (previous), to keep the volume small.
func checkCrashedVolume(t *testing.T, dir string, acked map[string][]byte, previous map[string]string, st *crashStats) []string {
	t.Helper()
	vs, err := scanVolume(dir)
	if err != nil {
		t.Fatal(err)
	}
	for hash, p := range vs.blocks {
		if err := checkBlockFile(p, hash); err != nil {
			t.Errorf("after a kill: %v", err)
		}
		st.blockFiles++
	}
	for hash, data := range acked {
		got, err := os.ReadFile(blockPath(dir, hash))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("acknowledged block %s+%d lost or changed by a kill (%d bytes on disk, %v)", hash, len(data), len(got), err)
		}
	}
	for _, p := range vs.other {
		t.Logf("volume holds an unexpected file %s", p)
	}
	for hash := range previous {
		if _, ok := acked[hash]; !ok {
			os.Remove(blockPath(dir, hash))
		}
	}
	st.tmpsLeft += len(vs.tmps)
	return vs.tmps
}

// checkRestartedServer checks a server just restarted on a volume a kill
// left: every block reads back (acknowledged ones byte-correct), no
// temporary file is served, and the temporary files are gone. It
// returns the blocks the volume holds.
func checkRestartedServer(t *testing.T, hc *http.Client, srv *server, acked map[string][]byte, tmps []string, st *crashStats) map[string]string {
	t.Helper()
	vs := scanAfterCleanup(t, srv.dir)
	st.tmpsRemoved += len(tmps) - len(vs.tmps)
	for _, p := range vs.tmps {
		t.Errorf("temporary file %s still there after the server reopened the volume", p)
	}
	base := srv.service().URL()
	for hash, p := range vs.blocks {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		code, body, err := httpGet(hc, base+"/"+hash+"+"+strconv.FormatInt(fi.Size(), 10))
		sum := md5.Sum(body)
		switch data, isAcked := acked[hash]; {
		case err != nil || code != http.StatusOK:
			t.Errorf("GET of stored block %s after restart: %d %v", hash, code, err)
		case hex.EncodeToString(sum[:]) != hash:
			t.Errorf("GET of %s after restart returned data with MD5 %x", hash, sum)
		case isAcked && !bytes.Equal(body, data):
			t.Errorf("GET of acknowledged %s after restart returned other bytes", hash)
		default:
			st.readBack++
		}
	}
	for _, p := range tmps {
		name := filepath.Base(p)
		if code, _, err := httpGet(hc, base+"/"+name); err != nil || code == http.StatusOK {
			t.Errorf("GET of temporary file name %s: %d %v", name, code, err)
		}
		// Names are "tmp" + hash + "-" + random digits.
		if len(name) < 35 || !isHex(name[3:35]) {
			continue
		}
		hash := name[3:35]
		if _, stored := vs.blocks[hash]; stored {
			continue
		}
		if code, _, err := httpGet(hc, base+"/"+hash); err != nil || code != http.StatusNotFound {
			t.Errorf("GET of %s, only ever a temporary file: %d %v, want 404", hash, code, err)
		}
		st.tmpRefused++
	}
	return vs.blocks
}

// httpGet GETs url with a token and returns the status and body.
func httpGet(hc *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer reliability")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// randomBytes returns n random bytes.
func randomBytes(n int64) []byte {
	b := make([]byte, n)
	crand.Read(b)
	return b
}

// logUniform returns a size between lo and hi whose logarithm is uniform,
// so small and large blocks are both common.
func logUniform(rng *rand.Rand, lo, hi int64) int64 {
	l := math.Log2(float64(lo)) + rng.Float64()*(math.Log2(float64(hi))-math.Log2(float64(lo)))
	return min(hi, max(lo, int64(math.Exp2(l))))
}

// sleepRandom pauses for a random time in [lo, hi): chaos workload.
func sleepRandom(rng *rand.Rand, lo, hi time.Duration) {
	time.Sleep(lo + time.Duration(rng.Int64N(int64(hi-lo))))
}

// TestRestartRemovesFreshTempFiles checks that a server opening a volume
// removes every temporary file in it (in its scan at open), however
// young: when the server
// starts, holding the volume's lock, no write of its own is in flight,
// so each one is the leftover of a crash. (keepstore once removed only
// those over an hour old, so a server in a crash loop kept every partial
// block it was writing, up to 64 MiB each.)
func TestRestartRemovesFreshTempFiles(t *testing.T) {
	proctest.Binary(t)
	root := t.TempDir()
	srv, err := newServer(t, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	hash := fmt.Sprintf("%x", md5.Sum([]byte("interrupted")))
	tmp := filepath.Join(srv.dir, hash[:3], "tmp"+hash+"-123456789")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("interrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.kill)
	if err := srv.start(proctest.Env(t), false); err != nil {
		t.Fatal(err)
	}
	scanAfterCleanup(t, srv.dir)
	if _, err := os.Stat(tmp); err == nil {
		t.Errorf("fresh temporary file %s still there after the server opened the volume", tmp)
	}
}

// scanAfterCleanup returns the volume at dir once it holds no temporary
// file, or as it is after proctest.Timeout: a server removes the
// leftovers of interrupted writes in its scan of the volume at open,
// which runs in the background once it listens.
func scanAfterCleanup(t *testing.T, dir string) volumeScan {
	t.Helper()
	for deadline := time.Now().Add(proctest.Timeout); ; time.Sleep(20 * time.Millisecond) {
		vs, err := scanVolume(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs.tmps) == 0 || time.Now().After(deadline) {
			return vs
		}
	}
}
