package bench

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/localcluster"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

// readFixture is a file stored in 1 MiB blocks at 2 replicas on two
// in-process servers, and a bench ready to read it in place.
type readFixture struct {
	b       *bench
	servers []*Server // in-process: no CPU time of their own
	kc      *keepclient.Client
	m       *manifest.Manifest
	data    []byte
}

// newReadFixture stores a random file of size bytes; discard is
// Config.GetToDiscard.
func newReadFixture(t *testing.T, size int64, discard bool) *readFixture {
	t.Helper()
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Config{Dir: t.TempDir(), Servers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg, err := Config{Launcher: InProcess{}, GetToDiscard: discard}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	opts := cfg.Client
	opts.Services, opts.Replicas = c.Services(), readInPlaceN
	kc, err := keepclient.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	path := filepath.Join(t.TempDir(), "data")
	if err := writeRandomFile(path, size, randomSource()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inputs, _, err := transfer.CollectInputs([]string{path}, transfer.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, failures, err := transfer.Put(ctx, kc, inputs, transfer.PutOptions{BlockSize: 1 << 20})
	if err != nil || len(failures) > 0 {
		t.Fatalf("put: %v %v", err, failures)
	}
	b := &bench{cfg: cfg, tmp: t.TempDir(), md5: 500, cores: 2}
	var servers []*Server
	for _, svc := range c.Services() {
		servers = append(servers, &Server{Service: svc})
	}
	return &readFixture{b: b, servers: servers, kc: kc, m: m, data: data}
}

// TestReadInPlaceBytes reads an 8 MiB file through keep web and through
// a keepfs mount and checks that each reader got exactly the file's
// bytes. The mount part is skipped, in one line, where this process
// cannot mount (KEEP_TEST_FUSE makes that a failure).
func TestReadInPlaceBytes(t *testing.T) {
	fx := newReadFixture(t, 8<<20, false)
	ctx := context.Background()
	t.Run("web", func(t *testing.T) {
		var got bytes.Buffer
		run, err := fx.b.readWeb(ctx, fx.kc, fx.servers, fx.m, &got)
		if err != nil {
			t.Fatal(err)
		}
		checkRead(t, run, got.Bytes(), fx.data)
	})
	t.Run("mount", func(t *testing.T) {
		needMount(t)
		var got bytes.Buffer
		run, err := fx.b.readMount(ctx, fx.kc, fx.servers, fx.m, &got)
		if err != nil {
			t.Fatal(err)
		}
		checkRead(t, run, got.Bytes(), fx.data)
		checkUnmounted(t, fx.b.tmp)
	})
}

// TestReadInPlace runs the three reads as Run does, into files, and
// checks the rows: every read complete, the ratios over get's rate, and
// nothing left in the benchmark's directory or mounted.
func TestReadInPlace(t *testing.T) {
	fx := newReadFixture(t, 4<<20, false)
	r, err := fx.b.readInPlace(context.Background(), fx.kc, fx.servers, fx.m)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(fx.data))
	if r.Output != "file" || r.Get.Bytes != size || r.Web.Bytes != size || r.Get.MBps <= 0 || r.Web.MBps <= 0 {
		t.Errorf("rows %+v", r)
	}
	if want := r.Web.MBps / r.Get.MBps; r.WebRatio != want {
		t.Errorf("web ratio %v, want %v", r.WebRatio, want)
	}
	switch {
	case r.Mount == nil && r.MountSkipped == "":
		t.Error("no mount row and no reason")
	case r.Mount != nil && (r.Mount.Bytes != size || r.MountRatio == nil || *r.MountRatio != r.Mount.MBps/r.Get.MBps):
		t.Errorf("mount row %+v, ratio %v", *r.Mount, r.MountRatio)
	}
	checkUnmounted(t, fx.b.tmp)
	var table strings.Builder
	if err := r.writeTable(&table, size); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{getInPlaceName, webInPlaceName, mountInPlaceName, "vs get"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	t.Logf("\n%s", table.String())
}

// TestReadInPlaceMountSkipped checks that the table gives a skipped
// mount one line with its reason.
func TestReadInPlaceMountSkipped(t *testing.T) {
	t.Parallel()
	r := &ReadInPlace{Output: "discard", Get: Measurement{Name: getInPlaceName, MBps: 100}, Web: Measurement{Name: webInPlaceName, MBps: 90},
		WebRatio: 0.9, MountSkipped: "no FUSE device"}
	var table strings.Builder
	if err := r.writeTable(&table, 8<<20); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for line := range strings.SplitSeq(table.String(), "\n") {
		if strings.HasPrefix(line, mountInPlaceName) {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 || !strings.HasSuffix(lines[0], "skipped: no FUSE device") {
		t.Errorf("mount lines %q in:\n%s", lines, table.String())
	}
}

func checkRead(t *testing.T, run Measurement, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes that differ from the file's %d", len(got), len(want))
	}
	if run.Bytes != int64(len(want)) {
		t.Errorf("measured %d bytes, want %d", run.Bytes, len(want))
	}
}

// needMount skips the test where this process cannot mount, or with
// KEEP_TEST_FUSE set fails it.
func needMount(t *testing.T) {
	t.Helper()
	if why := mountUnavailable(); why != "" {
		if os.Getenv("KEEP_TEST_FUSE") != "" {
			t.Fatalf("cannot mount: %s", why)
		}
		t.Skipf("cannot mount: %s", why)
	}
}

// checkUnmounted fails the test if anything under dir is still mounted
// or left behind.
func checkUnmounted(t *testing.T, dir string) {
	t.Helper()
	if f, err := os.Open("/proc/self/mounts"); err == nil {
		data, _ := io.ReadAll(f)
		f.Close()
		if strings.Contains(string(data), dir) {
			t.Errorf("still mounted under %s:\n%s", dir, data)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind in %s: %v", dir, left)
	}
}
