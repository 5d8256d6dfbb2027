package netbed

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/manifest"
)

// TestTestbed builds two hosts, stores and reads a block from one on a
// keep server on the other through their shaped links, cuts and
// restores the server's link, and checks that Close leaves nothing.
func TestTestbed(t *testing.T) {
	tb := New(t)
	bin, env := KeepBinary(t), proctest.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Timeout)
	defer cancel()
	server, err := tb.AddHost(ctx, "server", Link{Rate: 100 * Mbit})
	if err != nil {
		t.Fatal(err)
	}
	client, err := tb.AddHost(ctx, "client", Link{Rate: 50 * Mbit})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := server.StartKeepServer(ctx, bin, env, "zzzzz-bi6l4-000000000000000", filepath.Join(dir, "volume"))
	if err != nil {
		t.Fatal(err)
	}
	svcFile := filepath.Join(dir, "services.json")
	if err := WriteServices(svcFile, []*KeepServer{srv}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{1}).Read(data)
	src := filepath.Join(dir, "data")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	text := keep(ctx, t, client, bin, env, "put", "--no-cache", "--no-progress", "--replicas", "1", "--services", svcFile, src)
	m, err := manifest.Parse(text)
	if err != nil {
		t.Fatalf("keep put printed %q: %v", text, err)
	}
	if c, err := CountCopies([]*KeepServer{srv}, m.Blocks()); err != nil || c.Min != 1 || c.Max != 1 {
		t.Errorf("copies: %v, %v; want 1 of each block", c, err)
	}
	checkShaped(ctx, t, tb, server, 100*Mbit)
	if received, _, err := server.Traffic(); err != nil || received < int64(len(data)) {
		t.Errorf("server received %d bytes over its link (%v), want at least %d", received, err, len(data))
	}
	checkCut(ctx, t, client, server, bin, env, srv.Service.URL(), m.Blocks()[0].String(), data)
	checkClose(ctx, t, tb, srv.Process.PID())
}

// keep runs keep on h and returns its standard output, failing t if it
// fails.
func keep(ctx context.Context, t *testing.T, h *Host, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := h.Command(bin, args...)
	cmd.Env = env
	out, _, err := h.Run(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkShaped checks that both ends of h's link have a tbf of rate.
func checkShaped(ctx context.Context, t *testing.T, tb *Testbed, h *Host, rate int64) {
	t.Helper()
	want := "rate " + strconv.FormatInt(rate/Mbit, 10) + "Mbit"
	for _, args := range [][]string{{"qdisc", "show", "dev", h.Device()}, {"-n", h.Namespace(), "qdisc", "show", "dev", "eth0"}} {
		out, err := tb.tc(ctx, args...)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "tbf") || !strings.Contains(out, want) {
			t.Errorf("tc %s: %q, want a tbf with %q", args, out, want)
		}
	}
}

// checkCut cuts server's link, checks that a read of loc from the client
// does not succeed while it is cut, then restores it and reads data
// back.
func checkCut(ctx context.Context, t *testing.T, client, server *Host, bin string, env []string, url, loc string, data []byte) {
	t.Helper()
	if err := server.Cut(ctx); err != nil {
		t.Fatal(err)
	}
	if state, err := os.ReadFile("/sys/class/net/" + server.Device() + "/operstate"); err != nil || strings.TrimSpace(string(state)) != "down" {
		t.Errorf("link of a cut host: operstate %q (%v), want down", state, err)
	}
	// While the link is down no answer can come; the read gives up
	// when its context ends, or fails sooner.
	cutCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	cmd := client.Command(bin, "get", "--passes", "1", loc)
	cmd.Env = append(env, "ARVADOS_KEEP_SERVICES="+url)
	if out, _, err := client.Run(cutCtx, cmd); err == nil {
		t.Errorf("keep get through a cut link succeeded: %d bytes", len(out))
	}
	cancel()
	if err := server.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	cmd = client.Command(bin, "get", loc)
	cmd.Env = append(env, "ARVADOS_KEEP_SERVICES="+url)
	out, _, err := client.Run(ctx, cmd)
	if err != nil {
		t.Fatalf("keep get after the link was restored: %v", err)
	}
	if !bytes.Equal([]byte(out), data) {
		t.Errorf("keep get after the link was restored: %d bytes, not those stored", len(out))
	}
}

// checkClose closes tb and checks that none of its namespaces and
// devices, and not the server process pid, remain.
func checkClose(ctx context.Context, t *testing.T, tb *Testbed, pid int) {
	t.Helper()
	if err := tb.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if left := remains(ctx, t, tb.Prefix()); len(left) > 0 {
		t.Errorf("after Close: %s remain", left)
	}
	if alive(pid) {
		t.Errorf("after Close: the server process %d is alive", pid)
	}
}

// remains returns the namespaces and devices whose names start with
// prefix.
func remains(ctx context.Context, t *testing.T, prefix string) []string {
	t.Helper()
	tl, err := findTools()
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(ctx, tl.ip, "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			left = append(left, "namespace "+f[0])
		}
	}
	devs, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if strings.HasPrefix(d.Name(), prefix) {
			left = append(left, "device "+d.Name())
		}
	}
	return left
}

// TestSweep makes what a killed test process would leave (a namespace
// with a process in it, a bridge and a veth pair, named for a process
// that has exited) and checks that Sweep removes it all, and leaves a
// live testbed alone.
func TestSweep(t *testing.T) {
	live := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Timeout)
	defer cancel()
	if _, err := live.AddHost(ctx, "live", Link{}); err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	prefix := "nb" + strconv.Itoa(gone.Process.Pid) + "zz"
	tl := live.tools
	for _, args := range [][]string{
		{"netns", "add", prefix + "-x"},
		{"link", "add", prefix + "br", "type", "bridge"},
		{"link", "add", prefix + "h0", "type", "veth", "peer", "name", "eth0", "netns", prefix + "-x"},
		{"link", "set", prefix + "h0", "master", prefix + "br"},
	} {
		if _, err := run(ctx, tl.ip, args...); err != nil {
			removeHost(ctx, tl, prefix+"-x", prefix+"h0")
			removeHost(ctx, tl, "", prefix+"br")
			t.Fatal(err)
		}
	}
	// A process the dead test left running in its namespace.
	orphan := exec.Command(tl.ip, "netns", "exec", prefix+"-x", "sleep", "600")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	if err := Sweep(ctx); err != nil {
		t.Error(err)
	}
	if err := orphan.Wait(); err == nil {
		t.Error("the process in a leftover namespace exited by itself, want it killed")
	}
	if left := remains(ctx, t, prefix); len(left) > 0 {
		t.Errorf("after Sweep: %s remain", left)
	}
	if left := remains(ctx, t, live.Prefix()); len(left) != 3 {
		t.Errorf("after Sweep, the live testbed has %s, want its bridge, one veth and one namespace", left)
	}
}
