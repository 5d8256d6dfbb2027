package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

func TestParseVmHWM(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     int64
		wantErr  bool
	}{
		{name: "status", in: "Name:\tkeep\nVmPeak:\t  9000 kB\nVmHWM:\t    1944 kB\nVmRSS:\t 1000 kB\n", want: 1944 << 10},
		{name: "missing", in: "Name:\tkeep\nVmRSS:\t 1000 kB\n", wantErr: true},
		{name: "bad unit", in: "VmHWM:\t 1944 MB\n", wantErr: true},
		{name: "bad number", in: "VmHWM:\t lots kB\n", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseVmHWM([]byte(tt.in))
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

func TestReadyWriter(t *testing.T) {
	t.Parallel()
	w := newReadyWriter("listening")
	io.WriteString(w, "starting\nlist")
	select {
	case <-w.ready:
		t.Fatal("ready before the marker")
	default:
	}
	io.WriteString(w, "ening on 127.0.0.1:1234")
	select {
	case <-w.ready:
		t.Fatal("ready before the line ended")
	default:
	}
	io.WriteString(w, "\nmore\n")
	<-w.ready
	io.WriteString(w, "listening again\n") // must not close twice
	if !strings.Contains(w.tail(), "listening on") {
		t.Errorf("tail %q", w.tail())
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
// the report is complete and the storage exact.
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
		if p.StorageRatio == nil || math.Abs(*p.StorageRatio-1) > 1e-9 {
			t.Errorf("%s: storage ratio %v", p.Name, p.StorageRatio)
		}
		if p.MBps <= 0 || p.CeilingMBps <= 0 || p.TotalCPUPerGiB == nil {
			t.Errorf("%s: incomplete %+v", p.Name, p)
		}
	}
	if len(r.Put) != 3 || len(r.Get) != 3 {
		t.Errorf("%d puts, %d gets", len(r.Put), len(r.Get))
	}
	f := r.Faults
	if f.Healthy.MBps <= 0 || f.DownRatio <= 0 || f.SlowRatio <= 0 || f.SlowNoHedgeRatio <= 0 {
		t.Errorf("faults %+v", f)
	}
	if s := r.SmallFiles; s.FilesPerSec <= 0 || s.Ratio <= 0 || s.Put.Bytes != 50*4096 {
		t.Errorf("small files %+v", s)
	}
	if profile.Len() == 0 || getProfile.Len() == 0 {
		t.Errorf("CPU profiles of %d and %d bytes", profile.Len(), getProfile.Len())
	}
	if !strings.Contains(progress.String(), "put N=3") {
		t.Errorf("progress:\n%s", progress.String())
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "1.000") {
		t.Errorf("table:\n%s", table.String())
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
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
