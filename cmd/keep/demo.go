package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/localcluster"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "", "A self-contained demonstration: starts 5 block servers and a proxy in a\ntemporary directory, writes a file with 3 replicas, reads it back, and\nwrites again with one server down and one full, directly and through\nthe proxy. Cleans up afterwards.", stderr)
	size := fs.Int("size", 100<<20, "sample file size in `bytes`")
	keep := fs.Bool("keep", false, "keep the temporary directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *size < 0 {
		fs.Usage()
		return errUsage
	}
	dir, err := os.MkdirTemp("", "keep-demo-")
	if err != nil {
		return err
	}
	if *keep {
		defer fmt.Fprintf(stdout, "\nData left in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	d := &demo{out: stdout, dir: dir}
	return d.run(ctx, *size)
}

type demo struct {
	out io.Writer
	dir string
	c   *localcluster.Cluster
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) run(ctx context.Context, size int) error {
	c, err := localcluster.Start(ctx, localcluster.Config{Dir: filepath.Join(d.dir, "cluster"), Servers: 5, Proxy: true})
	if err != nil {
		return err
	}
	defer c.Close()
	d.c = c
	d.say("== 1. A local cluster: 5 block servers and a proxy, data in %s", d.dir)
	for i, n := range c.Servers {
		d.say("   server %d  %s  %s", i, n.Service.UUID, n.Service.URL())
	}
	d.say("   proxy     %s  %s", c.Proxy.Service.UUID, c.Proxy.Service.URL())

	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), Token: localToken, Replicas: 3, RetryDelay: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer kc.Close()
	for _, step := range []func(context.Context, *keepclient.Client, int) error{d.writeAndRead, d.faults, d.throughProxy, d.tooMany} {
		if err := step(ctx, kc, size); err != nil {
			return err
		}
	}
	d.say("\nDone: every write reached 3 replicas despite the faults; cleaning up.")
	return nil
}

// writeAndRead writes a file of size bytes with kc and reads it back.
func (d *demo) writeAndRead(ctx context.Context, kc *keepclient.Client, size int) error {
	sample := filepath.Join(d.dir, "sample.bin")
	if err := writeRandomFile(sample, size); err != nil {
		return err
	}
	d.say("\n== 2. Write %s (%d MiB) with 3 replicas", filepath.Base(sample), size>>20)
	m, err := d.put(ctx, kc, sample)
	if err != nil {
		return err
	}
	d.say("   manifest: %s", strings.TrimSpace(shorten(m.Text())))

	d.say("\n== 3. Read it back and verify")
	return d.verify(ctx, kc, m, sample)
}

// faults stops one server and fills another, those a write of a second
// file (of size/2 bytes) would use first, and writes it with kc.
func (d *demo) faults(ctx context.Context, kc *keepclient.Client, size int) error {
	// Pick the faults so they hit the servers the next write would use first.
	other := filepath.Join(d.dir, "second.bin")
	if err := writeRandomFile(other, size/2); err != nil {
		return err
	}
	data, _ := os.ReadFile(other)
	first := locator.New(data[:min(len(data), locator.MaxBlockSize)])
	order := keepclient.ProbeOrder(first.Hash, d.c.Services())
	down, full := d.node(order[0]), d.node(order[1])
	down.Stop()
	full.SetFull(true)
	d.say("\n== 4. Faults: %s is down (connection refused), %s is full (507)", down.Service.UUID, full.Service.UUID)
	d.say("   Write %s (%d MiB) with 3 replicas; those two are first in its probe order", filepath.Base(other), (size/2)>>20)
	m, err := d.put(ctx, kc, other)
	if err != nil {
		return err
	}
	return d.verify(ctx, kc, m, other)
}

// throughProxy writes a third file (of size/4 bytes) through the proxy.
func (d *demo) throughProxy(ctx context.Context, _ *keepclient.Client, size int) error {
	d.say("\n== 5. The same through the proxy: one upload to it (a non-disk service); it")
	d.say("   writes 3 replicas behind it, routing around the same two faulty servers")
	pc, err := keepclient.New(keepclient.Options{Services: d.c.ProxyServices(), Token: localToken, Replicas: 3, RetryDelay: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer pc.Close()
	third := filepath.Join(d.dir, "third.bin")
	if err := writeRandomFile(third, size/4); err != nil {
		return err
	}
	m, err := d.put(ctx, pc, third)
	if err != nil {
		return err
	}
	return d.verify(ctx, pc, m, third)
}

// tooMany shows the error of a write asking kc for more copies than
// the cluster has writable servers.
func (d *demo) tooMany(ctx context.Context, kc *keepclient.Client, _ int) error {
	d.say("\n== 6. Asking for more than the cluster can hold: 5 replicas with only 3 writable servers")
	_, err := kc.Put(ctx, []byte("five copies, please"), keepclient.PutOptions{Replicas: 5})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) {
		return fmt.Errorf("expected a write of 5 replicas to fall short, got %v", err)
	}
	d.say("   error, as it should be:\n   %s", strings.ReplaceAll(err.Error(), "; ", ";\n     "))
	return nil
}

// put writes one file and shows where each block went.
func (d *demo) put(ctx context.Context, kc *keepclient.Client, path string) (*manifest.Manifest, error) {
	var results []*keepclient.PutResult
	start := time.Now()
	info, _ := os.Stat(path)
	m, failures, err := transfer.Put(ctx, kc, []transfer.Input{{Src: path, Name: filepath.Base(path)}}, transfer.PutOptions{
		BlocksInFlight: 2,
		Report: func(i int, r *keepclient.PutResult) {
			for len(results) <= i {
				results = append(results, nil)
			}
			results[i] = r
		},
	})
	if err != nil {
		return nil, err
	}
	if len(failures) > 0 {
		return nil, errors.New(strings.Join(failures, "\n"))
	}
	el := time.Since(start)
	for i, r := range results {
		d.say("   block %d %s: %d replicas", i, r.Locator.Bare(), r.Replicas)
		for _, a := range r.Attempts {
			what := fmt.Sprintf("stored %d", a.Replicas)
			if a.Status != 200 {
				what = fmt.Sprintf("failed: %s", keepclient.ServiceResult{Service: a.Service, Status: a.Status, Message: a.Message}.String()[len(a.Service.String())+2:])
			}
			d.say("      pass %d  %-27s %s", a.Pass, a.Service.UUID, what)
		}
		var on []string
		for _, n := range d.c.Holders(r.Locator.Hash) {
			on = append(on, n.Service.UUID)
		}
		sort.Strings(on)
		d.say("      on disk in: %s", strings.Join(on, ", "))
	}
	d.say("   %d MiB in %.2fs (%.0f MiB/s)", info.Size()>>20, el.Seconds(), float64(info.Size())/(1<<20)/el.Seconds())
	return m, nil
}

func (d *demo) verify(ctx context.Context, kc *keepclient.Client, m *manifest.Manifest, path string) error {
	want, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var got bytes.Buffer
	fetch := func(ctx context.Context, l locator.Locator) ([]byte, error) { return kc.Get(ctx, l, nil) }
	if err := manifest.WriteFile(ctx, m.Files[0], fetch, &got); err != nil {
		return err
	}
	if !bytes.Equal(got.Bytes(), want) {
		return fmt.Errorf("read back %d bytes that differ from the %d written", got.Len(), len(want))
	}
	d.say("   read back %d bytes, MD5 of every block checked, identical to the original", got.Len())
	return nil
}

func (d *demo) node(s keepclient.Service) *localcluster.Node {
	for _, n := range d.c.Servers {
		if n.Service.UUID == s.UUID {
			return n
		}
	}
	return nil
}

func writeRandomFile(path string, size int) error {
	buf := make([]byte, size)
	rand.Read(buf)
	return os.WriteFile(path, buf, 0o644)
}

// shorten abbreviates +A signatures in manifest text for display.
func shorten(text string) string {
	var out []string
	for _, tok := range strings.Fields(text) {
		if l, err := locator.Parse(tok); err == nil {
			tok = l.Bare().String()
			if len(l.Hints) > 0 {
				tok += "+A…"
			}
		}
		out = append(out, tok)
	}
	return strings.Join(out, " ")
}
