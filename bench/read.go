package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepfs"
	"github.com/keepproject/keep/keepweb"
	"github.com/keepproject/keep/manifest"
)

// ReadInPlace compares three sequential reads of the large file, made
// one after the other on the servers of the put at readInPlaceN
// replicas: keep get's (transfer.Get), keep web's (a keepweb.Handler on
// a loopback HTTP server, the body copied in 1 MiB reads) and keep
// mount's (a keepfs mount in a temporary directory, the file copied in
// 1 MiB reads). Each goes to a file in the benchmark's directory, or
// with Config.GetToDiscard is thrown away. The ratios are each rate over
// Get's.
type ReadInPlace struct {
	// Output is "file" or "discard": where every read's bytes went.
	Output   string      `json:"output"`
	Get      Measurement `json:"get"`
	Web      Measurement `json:"web"`
	WebRatio float64     `json:"web_ratio_to_get"`
	// Mount and MountRatio are nil, and MountSkipped says why, when
	// this process cannot mount a FUSE filesystem.
	Mount        *Measurement `json:"mount"`
	MountRatio   *float64     `json:"mount_ratio_to_get"`
	MountSkipped string       `json:"mount_skipped,omitempty"`
}

// readInPlaceN is the replica count of the put whose file ReadInPlace
// reads; readChunk is the size of the web and mount readers' reads.
const (
	readInPlaceN = 2
	readChunk    = 1 << 20
)

// Row names of ReadInPlace.
const (
	getInPlaceName   = "get N=2 (transfer.Get)"
	webInPlaceName   = "web N=2 (keepweb, HTTP)"
	mountInPlaceName = "mount N=2 (keepfs, FUSE)"
)

// readInPlace reads m, one file, with transfer.Get, through keep web and
// through keep mount, and measures each read.
func (b *bench) readInPlace(ctx context.Context, kc *keepclient.Client, servers []*Server, m *manifest.Manifest) (*ReadInPlace, error) {
	r := &ReadInPlace{Output: "file"}
	if b.cfg.GetToDiscard {
		r.Output = "discard"
	}
	var err error
	if r.Get, err = b.get(ctx, getInPlaceName, kc, servers, m, readInPlaceN, len(servers), false); err != nil {
		return nil, err
	}
	err = b.toOutput("read-web", func(dst io.Writer) error {
		r.Web, err = b.readWeb(ctx, kc, servers, m, dst)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.WebRatio = ratio(r.Web.MBps, r.Get.MBps)
	b.progress("  %.2f of get's rate", r.WebRatio)
	if r.MountSkipped = mountUnavailable(); r.MountSkipped != "" {
		b.progress("%s: skipped: %s", mountInPlaceName, r.MountSkipped)
		return r, nil
	}
	var mnt Measurement
	err = b.toOutput("read-mount", func(dst io.Writer) error {
		mnt, err = b.readMount(ctx, kc, servers, m, dst)
		return err
	})
	var nm noMountError
	switch {
	case errors.As(err, &nm):
		r.MountSkipped = nm.Error()
		b.progress("%s: skipped: %s", mountInPlaceName, r.MountSkipped)
	case err != nil:
		return nil, err
	default:
		mr := ratio(mnt.MBps, r.Get.MBps)
		r.Mount, r.MountRatio = &mnt, &mr
		b.progress("  %.2f of get's rate", mr)
	}
	return r, nil
}

// toOutput calls fn with the file named name in the benchmark's
// directory, or with io.Discard under Config.GetToDiscard, and removes
// the file afterwards.
func (b *bench) toOutput(name string, fn func(io.Writer) error) error {
	if b.cfg.GetToDiscard {
		return fn(io.Discard)
	}
	path := filepath.Join(b.tmp, name)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	err = fn(f)
	return errors.Join(err, f.Close())
}

// readWeb serves kc's blocks with a keepweb.Handler on a loopback port,
// stores m's text as a block for it to find, and measures a GET of m's
// one file, copied to dst in 1 MiB reads.
func (b *bench) readWeb(ctx context.Context, kc *keepclient.Client, servers []*Server, m *manifest.Manifest, dst io.Writer) (Measurement, error) {
	b.progress("%s", webInPlaceName)
	f, err := oneFile(m)
	if err != nil {
		return Measurement{}, err
	}
	text := []byte(m.BareText())
	stored, err := kc.Put(ctx, text, keepclient.PutOptions{})
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: storing the manifest: %w", webInPlaceName, err)
	}
	h, err := keepweb.New(keepweb.Options{Client: kc})
	if err != nil {
		return Measurement{}, err
	}
	addr, stop, err := serveLoopback(h)
	if err != nil {
		return Measurement{}, err
	}
	defer stop()
	u := url.URL{Scheme: "http", Host: addr, Path: "/c=" + stored.Locator.String() + "/" + f.Path}
	var n int64
	use, err := measure(servers, nil, func() error {
		n, err = download(ctx, u.String(), b.cfg.Client.Token, dst)
		return err
	})
	if err == nil && n != f.Size() {
		err = fmt.Errorf("read %d bytes of %d", n, f.Size())
	}
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", webInPlaceName, err)
	}
	return b.readMeasurement(webInPlaceName, len(servers), f.Size(), use), nil
}

// serveLoopback serves h on a new port of 127.0.0.1 and returns its
// address and a function that stops the server and waits for it.
func serveLoopback(h http.Handler) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l) // ends with http.ErrServerClosed at Close
	}()
	stop := func() {
		srv.Close()
		<-done
	}
	return l.Addr().String(), stop, nil
}

// download copies the body of GET u, with token as a Bearer token, to
// dst in 1 MiB reads, and returns its length.
func download(ctx context.Context, u, token string, dst io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return copyChunks(ctx, dst, resp.Body)
}

// copyChunks copies src to dst in reads of readChunk bytes until EOF or
// until ctx is done, and returns the bytes copied.
func copyChunks(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, readChunk)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// noMountError is a failure to mount, which skips the mount row rather
// than failing the benchmark: the machine does not allow it.
type noMountError struct{ err error }

func (e noMountError) Error() string { return "mounting failed: " + e.err.Error() }
func (e noMountError) Unwrap() error { return e.err }

// readMount mounts m with keepfs on a temporary directory, as keep
// mount does with its default cache and readahead, and measures reading
// its one file sequentially into dst in 1 MiB reads. It unmounts before
// returning and waits for the mount to end.
func (b *bench) readMount(ctx context.Context, kc *keepclient.Client, servers []*Server, m *manifest.Manifest, dst io.Writer) (run Measurement, err error) {
	b.progress("%s", mountInPlaceName)
	f, err := oneFile(m)
	if err != nil {
		return Measurement{}, err
	}
	var tb keepfs.TreeBuilder
	if err := tb.Add("", m); err != nil {
		return Measurement{}, err
	}
	tree, err := tb.Tree()
	if err != nil {
		return Measurement{}, err
	}
	dir, err := os.MkdirTemp(b.tmp, "mount-")
	if err != nil {
		return Measurement{}, err
	}
	defer os.Remove(dir)
	mnt, err := keepfs.New(dir, tree, keepfs.Options{Client: kc, FsName: "keep-bench"})
	if err != nil {
		return Measurement{}, noMountError{err}
	}
	defer func() {
		uerr := mnt.Unmount()
		<-mnt.Done()
		if uerr != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", mountInPlaceName, uerr))
		}
	}()
	var n int64
	use, err := measure(servers, nil, func() error {
		n, err = readFile(ctx, filepath.Join(dir, filepath.FromSlash(f.Path)), dst)
		return err
	})
	if err == nil && n != f.Size() {
		err = fmt.Errorf("read %d bytes of %d", n, f.Size())
	}
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", mountInPlaceName, err)
	}
	return b.readMeasurement(mountInPlaceName, len(servers), f.Size(), use), nil
}

// readFile copies the file at path to dst in 1 MiB reads.
func readFile(ctx context.Context, path string, dst io.Writer) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return copyChunks(ctx, dst, f)
}

// mountUnavailable returns why this process cannot mount a FUSE
// filesystem, or "" when it may try: /dev/fuse must open, and the
// process be root or have fusermount3.
func mountUnavailable() string {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Sprintf("no FUSE device: %v", err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			return "not root and no fusermount3 (Debian package fuse3)"
		}
	}
	return ""
}

// oneFile returns m's file, which must be its only one.
func oneFile(m *manifest.Manifest) (manifest.File, error) {
	if len(m.Files) != 1 {
		return manifest.File{}, fmt.Errorf("reading in place wants one file, the manifest has %d", len(m.Files))
	}
	return m.Files[0], nil
}

// readMeasurement is newMeasurement for a read of size bytes, with the
// read ceiling.
func (b *bench) readMeasurement(name string, nServers int, size int64, u usage) Measurement {
	run := b.newMeasurement(name, readInPlaceN, nServers, size, size, u)
	run.CeilingMBps = ReadCeiling(b.md5, b.cores)
	run.CeilingRatio = ratio(run.MBps, run.CeilingMBps)
	b.progress("  %.0f MB/s (%.2f of the hash ceiling) in %.1fs", run.MBps, run.CeilingRatio, run.Seconds)
	return run
}

// writeTable prints r as aligned text.
func (r *ReadInPlace) writeTable(w *strings.Builder, fileBytes int64) error {
	into := "into a file"
	if r.Output == "discard" {
		into = "discarded"
	}
	fmt.Fprintf(w, "\nread in place: the %s file at N=%d over %d servers, read sequentially (web and mount in 1 MiB reads), %s; vs get = MB/s over get's\n\n",
		sizeString(fileBytes), readInPlaceN, r.Get.Servers, into)
	width := len(mountInPlaceName)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tMB/s\tof ceiling\tvs get\tclient CPU\tserver CPU\ttotal CPU\tpeak MiB\t\n", width, "run")
	row := func(m Measurement, vs float64) {
		fmt.Fprintf(tw, "%-*s\t%.0f\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t\n", width, m.Name, m.MBps, m.CeilingRatio, vs,
			m.ClientCPUPerGiB, optional(m.ServerCPUPerGiB, "%.2f"), optional(m.TotalCPUPerGiB, "%.2f"), optional(m.PeakClientMiB, "%.0f"))
	}
	row(r.Get, 1)
	row(r.Web, r.WebRatio)
	if r.Mount != nil {
		row(*r.Mount, *r.MountRatio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Mount == nil {
		fmt.Fprintf(w, "%-*s  skipped: %s\n", width, mountInPlaceName, r.MountSkipped)
	}
	return nil
}
