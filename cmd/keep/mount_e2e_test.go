package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/bytesize"
	"github.com/keepproject/keep/internal/fusetest"
	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/internal/synth"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/manifest"
)

var (
	mountBenchSize = flag.String("mount-bench-size", "32MiB", "file size for TestE2EMountThroughput (1GiB for the figures in docs/mount.md)")
	mountFiles     = flag.Int("mount-files", 10000, "files in the manifest of TestE2EMountMemory (100000 for the figures in docs/mount.md)")
)

// isMounted reports whether dir is a mount point, from /proc/self/mountinfo.
func isMounted(t *testing.T, dir string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// startMount runs keep mount with args and MOUNTPOINT dir (made if ""),
// and waits until it has mounted. When the test ends, even failing, the
// process is stopped and anything left mounted is detached.
func startMount(t *testing.T, env []string, dir string, args ...string) (*proc.Process, string) {
	t.Helper()
	fusetest.Need(t)
	if dir == "" {
		dir = t.TempDir()
	}
	t.Cleanup(func() {
		if isMounted(t, dir) {
			t.Errorf("%s left mounted", dir)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	p := proctest.Start(t, env, "mounted at", append(append([]string{"mount"}, args...), dir)...)
	return p, dir
}

// stopMount interrupts keep mount as Ctrl-C does and checks that it
// exits 0 and leaves nothing mounted.
func stopMount(t *testing.T, p *proc.Process, dir string) {
	t.Helper()
	p.Signal(os.Interrupt)
	if err := p.Wait(); err != nil {
		t.Errorf("keep mount after SIGINT: %v\n%s", err, p.Log())
	}
	if isMounted(t, dir) {
		t.Errorf("%s still mounted after SIGINT", dir)
	}
}

// mountSource writes a tree of files of several shapes under a new
// directory: one over a block, small ones sharing blocks, an empty
// file, an empty directory.
func mountSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	r := rand.New(rand.NewPCG(1, 2))
	files := map[string]int{"big.bin": 64<<20 + 5<<20, "empty": 0, "d/e/f.txt": 1000}
	for i := range 50 {
		files[fmt.Sprintf("small/%02d.dat", i)] = r.IntN(100000)
	}
	for p, n := range files {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755)
		if err := os.WriteFile(filepath.Join(src, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(src, "emptydir"), 0o755)
	return src
}

// sameTree compares the files under got with those under want, with
// cmp, and that both have the same files and directories.
func sameTree(t *testing.T, got, want string) {
	t.Helper()
	list := func(root string) []string {
		var out []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			info, _ := d.Info()
			out = append(out, fmt.Sprintf("%s %v %d", rel, d.IsDir(), map[bool]int64{true: 0, false: info.Size()}[d.IsDir()]))
			if !d.IsDir() {
				if out, err := exec.Command("cmp", p, filepath.Join(want, rel)).CombinedOutput(); root == got && err != nil {
					t.Errorf("cmp %s: %v %s", rel, err, out)
				}
			}
			return nil
		})
		return out
	}
	if g, w := strings.Join(list(got), "\n"), strings.Join(list(want), "\n"); g != w {
		t.Errorf("trees differ:\n%s\nwant:\n%s", g, w)
	}
}

func TestE2EMount(t *testing.T) {
	fusetest.Need(t)
	env := proctest.Env(t)
	svcFile, dirs, daemons := startServers(t, env, 3)
	src := mountSource(t)
	text, stderr, err := proctest.Run(t, env, nil, "put", "--services", svcFile, "--replicas", "2", src)
	if err != nil {
		t.Fatalf("put: %v\n%s", err, stderr)
	}
	m, err := manifest.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := keepclient.LoadServices(svcFile)
	if err != nil {
		t.Fatal(err)
	}
	// The first copy a reader asks for of the small files' block is
	// damaged: every read of them must skip it.
	small, _ := m.Subset("src/small/00.dat")
	corruptCopy(t, dirs, svcs, small.Files[0].Segments[0].Block.Hash)

	p, mnt := startMount(t, env, "", "--services", svcFile, "--cache", "100MiB", writeManifest(t, text))
	t.Run("cmp every file", func(t *testing.T) { sameTree(t, filepath.Join(mnt, "src"), src) })
	t.Run("tar", func(t *testing.T) {
		out := t.TempDir()
		cmd := exec.Command("sh", "-c", "tar -C "+mnt+" -cf - . | tar -C "+out+" -xf -")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, b)
		}
		sameTree(t, filepath.Join(out, "src"), src)
	})
	t.Run("random preads", func(t *testing.T) { randomPreads(t, filepath.Join(mnt, "src/big.bin"), filepath.Join(src, "big.bin")) })
	t.Run("server killed mid-read", func(t *testing.T) {
		// A fresh mount with no readahead: the second block is asked for
		// only once the reader gets there, after its first server is gone.
		p2, mnt2 := startMount(t, env, "", "--services", svcFile, "--readahead", "0", writeManifest(t, text))
		f, err := os.Open(filepath.Join(mnt2, "src/big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 1<<20)
		if _, err := io.ReadFull(f, head); err != nil {
			t.Fatal(err)
		}
		big, _ := m.Subset("src/big.bin")
		second := big.Files[0].Segments[1].Block.Hash
		first := keepclient.ProbeOrder(second, svcs)[0]
		daemons[serviceIndex(t, svcs, first)].Kill()
		rest, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatalf("reading on after a server was killed: %v\n%s", err, p2.Log())
		}
		want, _ := os.ReadFile(filepath.Join(src, "big.bin"))
		if !bytes.Equal(append(head, rest...), want) {
			t.Errorf("big.bin read through a killed server differs")
		}
		stopMount(t, p2, mnt2)
	})
	t.Run("unmount on SIGINT", func(t *testing.T) { stopMount(t, p, mnt) })

	cache := t.TempDir()
	t.Run("disk cache", func(t *testing.T) {
		p, mnt := startMount(t, env, "", "--services", svcFile, "--disk-cache", cache, writeManifest(t, text))
		sameTree(t, filepath.Join(mnt, "src/small"), filepath.Join(src, "small"))
		stopMount(t, p, mnt)
	})
	for _, d := range daemons {
		d.Kill()
	}
	t.Run("disk cache outlives the servers", func(t *testing.T) {
		p, mnt := startMount(t, env, "", "--services", svcFile, "--disk-cache", cache, writeManifest(t, text))
		sameTree(t, filepath.Join(mnt, "src/small"), filepath.Join(src, "small"))
		stopMount(t, p, mnt)
	})
	t.Run("no server: EIO and one log line", func(t *testing.T) {
		p, mnt := startMount(t, env, "", "--services", svcFile, "--passes", "1", writeManifest(t, text))
		_, err := os.ReadFile(filepath.Join(mnt, "src/d/e/f.txt"))
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("read with every server down: %v, want EIO", err)
		}
		stopMount(t, p, mnt)
		log := p.Log().String()
		if n := strings.Count(log, "reading a block failed"); n != 1 {
			t.Errorf("%d log lines for the failed block, want 1:\n%s", n, log)
		}
		f, _ := m.Subset("src/d/e/f.txt")
		if want := f.Files[0].Segments[0].Block.Bare().String(); !strings.Contains(log, want) || !strings.Contains(log, svcs[0].URL()) {
			t.Errorf("the log line lacks the block %s or a server:\n%s", want, log)
		}
	})
}

// corruptCopy flips a byte of the copy of block hash that a reader asks
// for first.
func corruptCopy(t *testing.T, dirs []string, svcs []keepclient.Service, hash string) {
	t.Helper()
	for _, s := range keepclient.ProbeOrder(hash, svcs) {
		p := filepath.Join(dirs[serviceIndex(t, svcs, s)], hash[:3], hash)
		data, err := os.ReadFile(p)
		if err != nil {
			continue // not on this server
		}
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("block %s is on no server", hash)
}

func serviceIndex(t *testing.T, svcs []keepclient.Service, s keepclient.Service) int {
	for i, x := range svcs {
		if x.UUID == s.UUID {
			return i
		}
	}
	t.Fatalf("no service %s", s.UUID)
	return -1
}

// randomPreads compares random reads of got with the same of want.
func randomPreads(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		off := r.Int64N(int64(len(w)) + 100)
		buf := make([]byte, r.IntN(3<<20))
		n, err := g.ReadAt(buf, off)
		end := min(off+int64(len(buf)), int64(len(w)))
		if n != int(max(end-off, 0)) || n < len(buf) && err != io.EOF || !bytes.Equal(buf[:n], w[min(off, end):end]) {
			t.Fatalf("pread of %d bytes at %d: %d bytes, %v", len(buf), off, n, err)
		}
	}
}

// TestE2EMountThroughput compares a cold sequential read of one file
// through keep mount with keep get of the same file to stdout, on the
// same three servers, in one run. Figures are logged, not asserted:
//
//	go test ./cmd/keep -run TestE2EMountThroughput -v -mount-bench-size 1GiB
func TestE2EMountThroughput(t *testing.T) {
	fusetest.Need(t)
	size, err := bytesize.Parse(*mountBenchSize)
	if err != nil {
		t.Fatal(err)
	}
	env := proctest.Env(t)
	svcFile, _, _ := startServers(t, env, 3)
	src := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{1}), size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	text, stderr, err := proctest.Run(t, env, nil, "put", "--services", svcFile, "--replicas", "2", "--no-progress", src)
	if err != nil {
		t.Fatalf("put: %v\n%s", err, stderr)
	}
	os.Remove(src)
	mf := writeManifest(t, text)

	get := proctest.Command(t, env, "get", "--services", svcFile, "--no-progress", mf)
	get.Stdout = io.Discard
	start := time.Now()
	if err := get.Run(); err != nil {
		t.Fatalf("get: %v", err)
	}
	getTime := time.Since(start)

	p, mnt := startMount(t, env, "", "--services", svcFile, mf)
	start = time.Now()
	r, err := os.Open(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, r, make([]byte, 1<<20))
	r.Close()
	mountTime := time.Since(start)
	if err != nil || n != size {
		t.Fatalf("read %d bytes through the mount, want %d: %v", n, size, err)
	}
	stopMount(t, p, mnt)
	mbs := func(d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }
	t.Logf("%s: keep get %.0f MB/s (%v), keep mount cold sequential read %.0f MB/s (%v): %.2f of get",
		bytesize.Format(size), mbs(getTime), getTime.Round(time.Millisecond), mbs(mountTime), mountTime.Round(time.Millisecond), getTime.Seconds()/mountTime.Seconds())
}

// TestE2EMountMemory mounts a manifest of many files (blocks that exist
// nowhere: nothing is read) and logs the time to mount, the mount's RSS
// against the manifest's size, and the same after find and du walked
// it. Figures are logged, not asserted:
//
//	go test ./cmd/keep -run TestE2EMountMemory -v -mount-files 100000
func TestE2EMountMemory(t *testing.T) {
	fusetest.Need(t)
	env := proctest.Env(t)
	data, _ := keepclient.MarshalServices([]keepclient.Service{{UUID: "e2e00-bi6l4-000000000000000", Host: "127.0.0.1", Port: 9, Type: "disk"}})
	svcFile := filepath.Join(t.TempDir(), "services.json")
	os.WriteFile(svcFile, data, 0o644)

	measure := func(files int) (text int, took time.Duration, rss, hwm string, p *proc.Process, mnt string) {
		mf := writeManifest(t, synth.FilesManifest(files))
		info, _ := os.Stat(mf)
		start := time.Now()
		p, mnt = startMount(t, env, "", "--services", svcFile, mf)
		took = time.Since(start)
		rss, hwm = procStatus(t, p.PID())
		return int(info.Size()), took, rss, hwm, p, mnt
	}
	_, _, baseRSS, _, p0, mnt0 := measure(1)
	stopMount(t, p0, mnt0)
	size, took, rss, hwm, p, mnt := measure(*mountFiles)
	t.Logf("mount of a one-file manifest: RSS %s", baseRSS)
	t.Logf("%d files, manifest %d bytes: mounted in %v (from starting keep); RSS %s, peak %s", *mountFiles, size, took.Round(time.Millisecond), rss, hwm)
	start := time.Now()
	out, err := exec.Command("find", mnt, "-type", "f").Output()
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out, []byte("\n")); n != *mountFiles {
		t.Errorf("find lists %d files, want %d", n, *mountFiles)
	}
	if out, err := exec.Command("du", "-s", mnt).CombinedOutput(); err != nil {
		t.Fatalf("du: %v %s", err, out)
	}
	walked := time.Since(start)
	rss, hwm = procStatus(t, p.PID())
	t.Logf("after find and du (%v): RSS %s, peak %s", walked.Round(time.Millisecond), rss, hwm)
	stopMount(t, p, mnt)
}

// procStatus returns the RSS (total and anonymous) and peak RSS of
// process pid.
func procStatus(t *testing.T, pid int) (rss, hwm string) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	field := func(name string) string {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return "?"
	}
	return field("VmRSS") + " (anonymous " + field("RssAnon") + ")", field("VmHWM")
}
