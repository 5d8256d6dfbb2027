package transfer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, c *keeptest.Cluster, replicas int) *keepclient.Client {
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), Replicas: replicas, RetryDelay: time.Millisecond, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	return kc
}

// tree writes files under a new directory and returns it.
func tree(t *testing.T, files map[string][]byte) string {
	root := filepath.Join(t.TempDir(), "src")
	for name, data := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "empty"), 0o755)
	return root
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestRoundTripDirectory(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := client(t, c, 2)
	files := map[string][]byte{
		"a.txt":       []byte("hello"),
		"sub/b.bin":   random(100000),
		"sub/c d.txt": []byte("space in name"),
		"zero":        nil,
	}
	for i := 0; i < 50; i++ {
		files[fmt.Sprintf("many/f%02d", i)] = random(4096)
	}
	root := tree(t, files)
	inputs, total, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, d := range files {
		want += int64(len(d))
	}
	if total != want {
		t.Errorf("total %d, want %d", total, want)
	}
	var progressed atomic.Int64
	m, failures, err := transfer.Put(context.Background(), kc, inputs, transfer.PutOptions{Progress: func(n int) { progressed.Add(int64(n)) }})
	if err != nil || failures != nil {
		t.Fatalf("Put: %v %v", err, failures)
	}
	if progressed.Load() != want {
		t.Errorf("progress %d, want %d", progressed.Load(), want)
	}
	// Small files share blocks: everything fits one block.
	if n := len(m.Blocks()); n != 1 {
		t.Errorf("%d blocks, want 1", n)
	}
	for _, b := range m.Blocks() {
		if n := len(c.Holders(b.Hash)); n != 2 {
			t.Errorf("block on %d servers", n)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	parsed, err := manifest.Parse(m.Text())
	if err != nil {
		t.Fatal(err)
	}
	if err := transfer.Get(context.Background(), kc, parsed, out, nil, transfer.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(out, "src", name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v, %d bytes", name, err, len(got))
		}
	}
	if info, err := os.Stat(filepath.Join(out, "src", "empty")); err != nil || !info.IsDir() {
		t.Errorf("empty directory not restored: %v", err)
	}
}

func TestGetSingleFileToStdout(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	kc := client(t, c, 1)
	data := random(5000)
	p := filepath.Join(t.TempDir(), "one")
	os.WriteFile(p, data, 0o644)
	m, _, err := transfer.Put(context.Background(), kc, []transfer.Input{{Src: p, Name: "one"}}, transfer.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := transfer.Get(context.Background(), kc, m, "", &buf, transfer.GetOptions{}); err != nil || !bytes.Equal(buf.Bytes(), data) {
		t.Fatalf("Get to stdout: %v", err)
	}
}

func TestPutReportsShortBlocks(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	kc := client(t, c, 3)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("three copies on two servers"), 0o644)
	m, failures, err := transfer.Put(context.Background(), kc, []transfer.Input{{Src: p, Name: "f"}}, transfer.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m != nil || len(failures) != 1 || !strings.Contains(failures[0], "stored 2 of 3") {
		t.Fatalf("manifest %v, failures %q", m, failures)
	}
}

func TestGetCorruptBlockFails(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	kc := client(t, c, 1)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("will be corrupted"), 0o644)
	m, _, err := transfer.Put(context.Background(), kc, []transfer.Input{{Src: p, Name: "f"}}, transfer.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Server(0).SetCorrupt(true)
	out := filepath.Join(t.TempDir(), "restored")
	if err := transfer.Get(context.Background(), kc, m, out, nil, transfer.GetOptions{}); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("Get of corrupt data: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Error("a partial file was left under the real name")
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestPutCancel(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	for _, s := range c.Servers() {
		s.SetDefault(keeptest.Response{Stall: true})
	}
	kc := client(t, c, 2)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, random(1000), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := transfer.Put(ctx, kc, []transfer.Input{{Src: p, Name: "f"}}, transfer.PutOptions{})
		errc <- err
	}()
	c.WaitRequests(context.Background(), 2)
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("cancelled Put succeeded")
	}
}

func TestRoundTripManyBlocks(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	kc := client(t, c, 2)
	files := map[string][]byte{"big": random(50000)}
	for i := 0; i < 30; i++ {
		files[fmt.Sprintf("small/%02d", i)] = random(700 + i)
	}
	root := tree(t, files)
	inputs, _, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, failures, err := transfer.Put(context.Background(), kc, inputs, transfer.PutOptions{BlockSize: 1024, BlocksInFlight: 3})
	if err != nil || failures != nil {
		t.Fatalf("Put: %v %v", err, failures)
	}
	if n := len(m.Blocks()); n < 70 {
		t.Fatalf("only %d blocks", n)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := transfer.Get(context.Background(), kc, m, out, nil, transfer.GetOptions{BlocksAhead: 2}); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(out, "src", name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v, %d bytes", name, err, len(got))
		}
	}
}

func TestCollectInputsNames(t *testing.T) {
	root := tree(t, map[string][]byte{"a": []byte("a"), "sub/b": []byte("bb")})
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	names := func(in []transfer.Input) string {
		var out []string
		for _, i := range in {
			out = append(out, i.Name)
		}
		return strings.Join(out, " ")
	}
	// A symlink to a directory stores the directory's content under the
	// link's name.
	in, total, err := transfer.CollectInputs([]string{link}, transfer.CollectOptions{})
	if err != nil || total != 3 || names(in) != "link link/a link/empty link/sub link/sub/b" {
		t.Errorf("symlinked dir: %q %d %v", names(in), total, err)
	}
	// "." is named after the directory it is.
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(root)
	in, _, err = transfer.CollectInputs([]string{"."}, transfer.CollectOptions{})
	if err != nil || names(in) != "src src/a src/empty src/sub src/sub/b" {
		t.Errorf("put .: %q %v", names(in), err)
	}
}

func TestGetIntoDotAndMode(t *testing.T) {
	c := keeptest.NewCluster(t, 1)
	kc := client(t, c, 1)
	root := tree(t, map[string][]byte{"a": []byte("a"), "b": []byte("b")})
	in, _, err := transfer.CollectInputs([]string{root}, transfer.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := transfer.Put(context.Background(), kc, in, transfer.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(out)
	if err := transfer.Get(context.Background(), kc, m, ".", nil, transfer.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(out, "src", "a"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() == 0o600 {
		t.Errorf("restored file mode %v: private, as CreateTemp made it", info.Mode())
	}
}
