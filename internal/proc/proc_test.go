package proc

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// canceled is a context that has ended: WaitLine with it only looks at
// the output already written.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// TestLogCompleteLines: a line counts once its line break is written, so
// that a line written in pieces is matched whole, and never a prefix.
func TestLogCompleteLines(t *testing.T) {
	t.Parallel()
	l := NewLog(0)
	re := regexp.MustCompile(`listening" addr=([0-9.:]+)$`)
	fmt.Fprint(l, "starting\nmsg=\"listen")
	fmt.Fprint(l, "ing\" addr=127.0.0.1:12")
	if m, err := l.WaitLine(canceled(), re); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("before the line break: %q, %v; want no match", m, err)
	}
	fmt.Fprint(l, "345\nmore")
	m, err := l.WaitLine(canceled(), re)
	if err != nil || m[1] != "127.0.0.1:12345" {
		t.Fatalf("WaitLine = %q, %v; want the whole address", m, err)
	}
	// Lines already written count for every new wait, from the start.
	if m, err := l.WaitLine(canceled(), regexp.MustCompile(`^start`)); err != nil || m[0] != "start" {
		t.Errorf("WaitLine(^start) = %q, %v", m, err)
	}
	if got, want := l.String(), "starting\nmsg=\"listening\" addr=127.0.0.1:12345\nmore"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestLogWaitBlocks: a WaitLine in progress returns at the write of the
// line, and waits for different patterns return independently.
func TestLogWaitBlocks(t *testing.T) {
	t.Parallel()
	l := NewLog(0)
	var wg sync.WaitGroup
	got := make([]string, 3)
	for i := range got {
		wg.Go(func() {
			m, err := l.WaitLine(context.Background(), regexp.MustCompile(fmt.Sprintf(`line (%d)`, i)))
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = m[1]
		})
	}
	for i := range got {
		fmt.Fprintf(l, "line %d\n", i)
	}
	wg.Wait()
	if strings.Join(got, ",") != "0,1,2" {
		t.Errorf("matches %q", got)
	}
}

// TestLogKeep: a Log that keeps only the end of the output still matches
// every line for a wait already in progress, and its String stays short.
func TestLogKeep(t *testing.T) {
	t.Parallel()
	l := NewLog(64)
	w, m, closed := l.watch(regexp.MustCompile(`needle`))
	if m != nil || closed {
		t.Fatalf("watch on an empty log: %q, %v", m, closed)
	}
	for i := range 100 {
		fmt.Fprintf(l, "hay %d\n", i)
		if i == 50 {
			fmt.Fprintln(l, "the needle")
		}
	}
	select {
	case m := <-w.match:
		if m[0] != "needle" {
			t.Errorf("match %q", m)
		}
	default:
		t.Fatal("the needle went by unmatched")
	}
	if s := l.String(); len(s) > 128 || !strings.HasPrefix(s, "hay ") || !strings.HasSuffix(s, "hay 99\n") {
		t.Errorf("kept %d bytes: %q", len(s), s)
	}
	if _, err := l.WaitLine(canceled(), regexp.MustCompile(`needle`)); err == nil {
		t.Error("a line no longer kept matched a new wait")
	}
}

// TestLogClose: after Close a last line without a line break counts, and
// a wait for a line that never came fails with ErrClosed at once.
func TestLogClose(t *testing.T) {
	t.Parallel()
	l := NewLog(0)
	done := make(chan error, 1)
	go func() {
		_, err := l.WaitLine(context.Background(), regexp.MustCompile(`never`))
		done <- err
	}()
	fmt.Fprint(l, "first\nlast words")
	l.Close()
	if err := <-done; !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "last words") {
		t.Errorf("wait ended by Close: %v, want ErrClosed with the output", err)
	}
	if m, err := l.WaitLine(context.Background(), regexp.MustCompile(`last (\w+)$`)); err != nil || m[1] != "words" {
		t.Errorf("WaitLine for the unterminated last line = %q, %v", m, err)
	}
	if _, err := l.WaitLine(context.Background(), regexp.MustCompile(`never`)); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitLine after Close = %v, want ErrClosed", err)
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
		got, err := ParseVmHWM([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %v, %v; want %v, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPeakRSSSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if n, err := PeakRSS(os.Getpid()); err != nil || n <= 0 {
		t.Errorf("PeakRSS(self) = %d, %v", n, err)
	}
}

func TestReadAddr(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		text, want string // want "" for an error
	}{
		{"127.0.0.1:25107\n", "127.0.0.1:25107"},
		{"0.0.0.0:80\n", "127.0.0.1:80"},
		{"[::]:80\n", "127.0.0.1:80"},
		{"[::1]:80", "[::1]:80"},
		{"127.0.0.1:0\n", ""},
		{"localhost:80\n", ""},
		{"", ""},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadAddr(path)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ReadAddr(%q) = %v, want an error", tt.text, got)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("ReadAddr(%q) = %v, %v; want %s", tt.text, got, err, tt.want)
		}
	}
	if _, err := ReadAddr(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadAddr of no file: %v", err)
	}
}

// helper returns a command running this test binary as the child process
// in mode (see helperMain).
func helper(t *testing.T, mode string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "serve")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// waitCtx bounds a wait of these tests.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestListen: the child is started with --addr-file, its address is read
// once it logs its ready line (the unspecified address as loopback), its
// standard output and error go to the one log, a stale address file is
// not read, and Kill ends it.
func TestListen(t *testing.T) {
	t.Parallel()
	addrFile := filepath.Join(t.TempDir(), "addr")
	if err := os.WriteFile(addrFile, []byte("127.0.0.1:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, addr, err := Listen(waitCtx(t), helper(t, "listen"), nil, addrFile, regexp.MustCompile(`listening`))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if want := netip.MustParseAddrPort("127.0.0.1:4567"); addr != want {
		t.Errorf("address %v, want %v", addr, want)
	}
	if p.State() != nil {
		t.Error("State() of a running process is not nil")
	}
	if m, err := p.WaitLine(waitCtx(t), regexp.MustCompile(`^start`)); err != nil || m[0] != "start" {
		t.Errorf("standard output not in the log: %q, %v", m, err)
	}
	if n, err := p.PeakRSS(); err != nil || n <= 0 {
		t.Errorf("PeakRSS = %d, %v", n, err)
	}
	if err := p.Kill(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Kill = %v, want killed", err)
	}
	if s := p.State(); s == nil || s.Exited() {
		t.Errorf("State() after Kill = %v", s)
	}
}

// TestListenExits: a child that exits before its ready line fails Listen
// with its exit status and output, at once.
func TestListenExits(t *testing.T) {
	t.Parallel()
	_, _, err := Listen(waitCtx(t), helper(t, "exit"), nil, filepath.Join(t.TempDir(), "addr"), regexp.MustCompile(`listening`))
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Listen of a child that exits: %v", err)
	}
}

// TestListenNotReady: ctx ending first fails Listen and kills the child.
func TestListenNotReady(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("given up"))
	cmd := helper(t, "listen")
	_, _, err := Listen(ctx, cmd, nil, filepath.Join(t.TempDir(), "addr"), regexp.MustCompile(`never`))
	if err == nil || !strings.Contains(err.Error(), "given up") {
		t.Errorf("Listen with an ended context: %v", err)
	}
	if cmd.ProcessState == nil {
		t.Error("the child was not waited for")
	}
}

// TestStop: SIGTERM ends a child that heeds it; one that ignores it is
// killed once grace has passed.
func TestStop(t *testing.T) {
	t.Parallel()
	p, err := Start(helper(t, "listen"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitLine(waitCtx(t), regexp.MustCompile(`listening`)); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(time.Minute); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("Stop = %v, want terminated", err)
	}

	p, err = Start(helper(t, "ignore-term"), NewLog(1<<10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitLine(waitCtx(t), regexp.MustCompile(`ready`)); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(10 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop of a child ignoring SIGTERM = %v, want killed", err)
	}
	if err := p.Kill(); err == nil {
		t.Error("Kill after exit lost the exit error")
	}
}
