package netbed

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
)

// TestDelay puts and gets a block through a Delay forwarder on the
// client's host, and logs how long each took directly and through it.
// The times are reported, not asserted.
func TestDelay(t *testing.T) {
	tb := New(t)
	bin, env := KeepBinary(t), proctest.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), proctest.Timeout)
	defer cancel()
	server, err := tb.AddHost(ctx, "server", Link{})
	if err != nil {
		t.Fatal(err)
	}
	client, err := tb.AddHost(ctx, "client", Link{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.StartKeepServer(ctx, bin, env, "zzzzz-bi6l4-000000000000000", filepath.Join(t.TempDir(), "volume"))
	if err != nil {
		t.Fatal(err)
	}
	const delay = 100 * time.Millisecond
	d, err := client.StartDelay(netip.AddrPortFrom(server.Addr(), uint16(srv.Service.Port)), delay)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{2}).Read(data)
	src := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{srv.Service.URL(), "http://" + d.Addr().String()} {
		start := time.Now()
		loc := keepURL(ctx, t, client, bin, env, url, "put", "--raw", "--no-cache", "--replicas", "1", src)
		put := time.Since(start)
		start = time.Now()
		got := keepURL(ctx, t, client, bin, env, url, "get", string(bytes.TrimSpace([]byte(loc))))
		if !bytes.Equal([]byte(got), data) {
			t.Errorf("through %s: keep get returned %d bytes, not those put", url, len(got))
		}
		t.Logf("through %s: put %v, get %v", url, put.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
}

// keepURL runs keep on h with url as its one service.
func keepURL(ctx context.Context, t *testing.T, h *Host, bin string, env []string, url string, args ...string) string {
	t.Helper()
	return keep(ctx, t, h, bin, append(env, "ARVADOS_KEEP_SERVICES="+url), args...)
}
