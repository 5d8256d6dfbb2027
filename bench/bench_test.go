package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/locator"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCeilings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		md5         float64
		cores, n    int
		write, read float64
	}{
		{md5: 600, cores: 2, n: 1, write: 600, read: 600},
		{md5: 600, cores: 2, n: 2, write: 400, read: 600},
		{md5: 600, cores: 2, n: 3, write: 300, read: 600},
		{md5: 500, cores: 8, n: 3, write: 1000, read: 2000},
		{md5: 500, cores: 1, n: 1, write: 250, read: 250},
	}
	for _, tt := range tests {
		if got := WriteCeiling(tt.md5, tt.cores, tt.n); math.Abs(got-tt.write) > 1e-9 {
			t.Errorf("WriteCeiling(%v, %d, %d) = %v, want %v", tt.md5, tt.cores, tt.n, got, tt.write)
		}
		if got := ReadCeiling(tt.md5, tt.cores); math.Abs(got-tt.read) > 1e-9 {
			t.Errorf("ReadCeiling(%v, %d) = %v, want %v", tt.md5, tt.cores, got, tt.read)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     time.Duration
		wantErr  bool
	}{
		{
			name: "plain",
			in:   "24649 (cat) R 24647 24647 22951 0 -1 4194304 102 0 0 0 150 25 0 0 20 0 1 0 844580 3133440 394 18446744073709551615",
			want: 1750 * time.Millisecond,
		},
		{
			name: "name with spaces and parentheses",
			in:   "77 (keep (x) y) S 1 77 77 0 -1 4194560 5 0 0 0 3 4 0 0 20 0 9 0 10 100 20 0\n",
			want: 70 * time.Millisecond,
		},
		{name: "no parenthesis", in: "77 keep S 1", wantErr: true},
		{name: "too short", in: "77 (keep) S 1 2 3", wantErr: true},
		{name: "not a number", in: "1 (k) S 1 1 1 0 -1 0 0 0 0 0 x 1 0 0", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseProcStat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestOwnProcessAccounting(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := processCPU(os.Getpid()); err != nil {
		t.Errorf("processCPU(self): %v", err)
	}
	if _, err := selfCPU(); err != nil {
		t.Errorf("selfCPU: %v", err)
	}
	if n, err := peakMemory(); err != nil || n <= 0 {
		t.Errorf("peakMemory: %d, %v", n, err)
	}
}

func TestLimiterSpacing(t *testing.T) {
	t.Parallel()
	l := newLimiter(1e6) // 1 µs per byte
	now := time.Unix(1000, 0)
	if d := l.reserveAt(now, 1000); d != 0 {
		t.Errorf("first reservation waits %v", d)
	}
	if d := l.reserveAt(now, 1000); d != time.Millisecond {
		t.Errorf("second reservation waits %v, want 1ms", d)
	}
	// An idle link earns no burst.
	later := now.Add(time.Second)
	if d := l.reserveAt(later, 5000); d != 0 {
		t.Errorf("after idling, reservation waits %v", d)
	}
	if d := l.reserveAt(later, 1); d != 5*time.Millisecond {
		t.Errorf("next reservation waits %v, want 5ms", d)
	}
}

// echoServer accepts connections and sends back everything it reads.
func echoServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

func TestThrottleRelaysIntact(t *testing.T) {
	t.Parallel()
	const rate = 4e6
	th, err := NewThrottle(echoServer(t), rate)
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	data := make([]byte, 1<<20)
	rand.Read(data)

	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", th.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			go func() {
				c.Write(data)
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("echo through throttle: %d of %d bytes back, err %v", len(got), len(data), err)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	// Two connections share the rate: about 0.5 s each way. Only logged:
	// the machine may be busy.
	t.Logf("2 × %d bytes each way at %g B/s took %v", len(data), float64(rate), time.Since(start))
}

func TestThrottleCloseDropsConnections(t *testing.T) {
	t.Parallel()
	th, err := NewThrottle(echoServer(t), 1000) // 1 kB/s: nothing finishes
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", th.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write(make([]byte, 1<<16))
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	th.Close()
	if _, err := io.Copy(io.Discard, c); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("reading after Close: %v", err)
	}
	if _, err := net.Dial("tcp", th.Addr().String()); err == nil {
		t.Error("Throttle still accepts after Close")
	}
}

func TestThrottleDrain(t *testing.T) {
	t.Parallel()
	th, err := NewThrottle(echoServer(t), 1e6)
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	if err := th.Drain(context.Background()); err != nil {
		t.Fatalf("Drain with no connections: %v", err)
	}

	c, err := net.Dial("tcp", th.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := make([]byte, 64<<10)
	rand.Read(data)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	// The first byte back shows the connection is being relayed.
	first := make([]byte, 1)
	if _, err := io.ReadFull(c, first); err != nil {
		t.Fatal(err)
	}
	// An open connection keeps Drain waiting until its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := th.Drain(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Drain with a connection open: %v, want context.Canceled", err)
	}

	// Once the client half-closes, what the Throttle holds still reaches
	// the server and the echo comes back; then Drain returns.
	c.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(c)
	if got := append(first, rest...); err != nil || !bytes.Equal(got, data) {
		t.Errorf("echo through throttle: %d of %d bytes back, err %v", len(got), len(data), err)
	}
	c.Close()
	if err := th.Drain(context.Background()); err != nil {
		t.Errorf("Drain after the connection ended: %v", err)
	}
}

func TestCountStored(t *testing.T) {
	t.Parallel()
	a := locator.New([]byte("block a"))
	b := locator.New([]byte("block bb"))
	other := locator.New([]byte("another put's block"))
	empty := locator.New(nil)
	servers := []*Server{{Dir: t.TempDir()}, {Dir: t.TempDir()}, {Dir: t.TempDir()}}
	write := func(dir, name string, size int) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	block := func(l locator.Locator) string { return filepath.Join(l.Hash[:3], l.Hash) }
	write(servers[0].Dir, block(a), int(a.Size))
	write(servers[1].Dir, block(a), int(a.Size))
	write(servers[2].Dir, block(a), int(a.Size))
	write(servers[1].Dir, block(b), int(b.Size))
	write(servers[2].Dir, block(b), int(b.Size))
	// Neither a file being written, nor a trashed copy, nor a block of
	// another put counts.
	write(servers[0].Dir, filepath.Join(b.Hash[:3], "tmp"+b.Hash+"-123"), int(b.Size))
	write(servers[0].Dir, block(b)+".trash.1700000000", int(b.Size))
	write(servers[0].Dir, block(other), int(other.Size))

	tests := []struct {
		name   string
		blocks []locator.Locator
		want   stored
		ratio  float64 // at 2 replicas
		copies string
	}{
		{
			name:   "one block on three servers, one on two",
			blocks: []locator.Locator{a, b, a, empty},
			want:   stored{blocks: 2, blockBytes: a.Size + b.Size, bytes: 3*a.Size + 2*b.Size, minCopies: 2, maxCopies: 3},
			ratio:  float64(3*a.Size+2*b.Size) / float64(2*(a.Size+b.Size)),
			copies: "2 blocks, 2 to 3 copies",
		},
		{
			name:   "exactly two copies",
			blocks: []locator.Locator{b},
			want:   stored{blocks: 1, blockBytes: b.Size, bytes: 2 * b.Size, minCopies: 2, maxCopies: 2},
			ratio:  1,
			copies: "1 block, 2 copies each",
		},
		{
			name:   "a block nobody holds",
			blocks: []locator.Locator{locator.New([]byte("absent")), b},
			want:   stored{blocks: 2, blockBytes: 6 + b.Size, bytes: 2 * b.Size, minCopies: 0, maxCopies: 2},
			ratio:  float64(2*b.Size) / float64(2*(6+b.Size)),
			copies: "2 blocks, 0 to 2 copies",
		},
	}
	for _, tt := range tests {
		got, known, err := countStored(servers, tt.blocks)
		if err != nil || !known || got != tt.want {
			t.Errorf("%s: got %+v, %v, %v; want %+v", tt.name, got, known, err, tt.want)
		}
		if r := got.ratio(2); math.Abs(r-tt.ratio) > 1e-12 {
			t.Errorf("%s: ratio %v, want %v", tt.name, r, tt.ratio)
		}
		if s := got.copiesString(); s != tt.copies {
			t.Errorf("%s: copiesString %q, want %q", tt.name, s, tt.copies)
		}
	}
	if _, known, err := countStored(append(servers, &Server{}), []locator.Locator{a}); known || err != nil {
		t.Errorf("with a server of unknown directory: known %v, err %v", known, err)
	}
}

func TestStampMakesBlocksDiffer(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := stamp(p, 100, 7); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if len(got) != 100 || got[0] != 7 || !bytes.Equal(got[16:], make([]byte, 84)) {
		t.Errorf("stamped file %x", got)
	}
}

// TestRunInProcess runs a tiny benchmark on in-process servers and checks
// that the report is complete. The stored ratio of every put must be
// measured and at least 1 (Put succeeded, so each block has at least N
// copies); how close to 1 it is depends on the client's write strategy.
func TestRunInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("writes tens of MiB")
	}
	var profile, getProfile, progress bytes.Buffer
	r, err := Run(context.Background(), Config{
		Launcher:      InProcess{},
		Dir:           t.TempDir(),
		FileBytes:     3 << 20,
		SmallFiles:    50,
		SlowRate:      50e6,
		CPUProfile:    &profile,
		GetCPUProfile: &getProfile,
		Progress:      &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Put {
		if p.MBps <= 0 || p.CeilingMBps <= 0 || p.TotalCPUPerGiB == nil {
			t.Errorf("%s: incomplete %+v", p.Name, p)
		}
	}
	for _, m := range append(append([]Measurement(nil), r.Put...), r.Get...) {
		// In-process servers' CPU is the client's: none to report apart.
		if m.ServerCPUPerGiB != nil {
			t.Errorf("%s: server CPU %.2f reported for in-process servers", m.Name, *m.ServerCPUPerGiB)
		}
	}
	if r.MD5CPUPerGiB <= 0 || math.Abs(r.MD5CPUPerGiB*r.MD5MBps-(1<<30)/1e6) > 1e-6 {
		t.Errorf("one MD5 pass %.3f CPU-s/GiB at %.0f MB/s", r.MD5CPUPerGiB, r.MD5MBps)
	}
	if len(r.Put) != 3 || len(r.Get) != 3 {
		t.Errorf("%d puts, %d gets", len(r.Put), len(r.Get))
	}
	f, s := r.Faults, r.SmallFiles
	puts := append(append([]Measurement(nil), r.Put...), f.Healthy, f.Down, f.Slow, s.Single, s.Put)
	for _, p := range puts {
		if p.StoredRatio == nil || *p.StoredRatio < 1 {
			t.Errorf("%s: stored ratio %v, want at least 1", p.Name, optional(p.StoredRatio, "%.3f"))
		}
	}
	for _, g := range r.Get {
		if g.StoredRatio != nil {
			t.Errorf("%s: stored ratio %.3f on a get", g.Name, *g.StoredRatio)
		}
	}
	if f.Healthy.MBps <= 0 || f.DownRatio <= 0 || f.SlowRatio <= 0 {
		t.Errorf("faults %+v", f)
	}
	if s.FilesPerSec <= 0 || s.Ratio <= 0 || s.Put.Bytes != 50*4096 {
		t.Errorf("small files %+v", s)
	}
	if profile.Len() == 0 || getProfile.Len() == 0 {
		t.Errorf("CPU profiles of %d and %d bytes", profile.Len(), getProfile.Len())
	}
	for _, want := range []string{"put N=3", "put N=2, 1 of 5 at 50 MB/s: stored/N×size "} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	// Every put row ends with its stored ratio, every get row with "-".
	for _, m := range r.measurements() {
		want := "-"
		if m.StoredRatio != nil {
			want = fmt.Sprintf("%.3f", *m.StoredRatio)
		}
		if !tableRowEndsWith(table.String(), m.Name, want) {
			t.Errorf("table has no row %q ending in %s:\n%s", m.Name, want, table.String())
		}
	}
	if strings.Contains(strings.ToLower(table.String()), "hedg") {
		t.Errorf("table still mentions hedging:\n%s", table.String())
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"stored_ratio":`)) {
		t.Errorf("JSON lacks stored_ratio: %s", data)
	}
	t.Logf("\n%s", table.String())
}

// tableRowEndsWith reports whether table has a line starting with name
// (then spaces) whose last field is last.
func tableRowEndsWith(table, name, last string) bool {
	for line := range strings.SplitSeq(table, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimLeft(line, " "), name+" ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) > 0 && f[len(f)-1] == last {
			return true
		}
	}
	return false
}

func TestRunCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, err := Run(ctx, Config{Launcher: InProcess{}, Dir: dir, FileBytes: 1 << 20, SmallFiles: 1})
	if err == nil {
		t.Fatal("cancelled Run succeeded")
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
