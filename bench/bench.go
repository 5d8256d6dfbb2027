// Package bench measures how fast a Keep cluster stores and reads data
// on this machine, and how close that comes to what the machine's MD5
// hashing allows.
//
// Every block is hashed once by the client and once by each server that
// stores it, and once by each side when it is read back, so on a machine
// where client and servers share the cores the hash rate sets a ceiling:
// see WriteCeiling and ReadCeiling. Run measures the hash rate, then puts
// and gets a large random file at 1, 2 and 3 replicas, puts it again with
// one of five servers down and with one slow, and puts many small files,
// reporting throughput, CPU time, client memory and bytes stored beside
// the ceilings. Each measurement gets fresh servers from a Launcher.
package bench

import (
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
	"github.com/keepproject/keep/transfer"
)

// Config configures Run. Only Launcher is required.
type Config struct {
	// Launcher provides the servers for each measurement.
	Launcher Launcher
	// Dir holds the benchmark's temporary directory, removed at the end.
	// Default os.TempDir().
	Dir string
	// FileBytes is the size of the large file. Default 512 MiB.
	FileBytes int64
	// SmallFiles is the number of small files. Default 20000.
	SmallFiles int
	// SmallFileBytes is the size of each small file. Default 4096.
	SmallFileBytes int
	// BlocksInFlight is transfer.PutOptions.BlocksInFlight. Default 4.
	BlocksInFlight int
	// SlowRate is the rate, in bytes per second each way, of the link to
	// the slow server. Default 10e6.
	SlowRate float64
	// Client is the template for the benchmark's clients; Services and
	// Replicas are set per measurement. A missing Token becomes
	// "keep-bench".
	Client keepclient.Options
	// GetToDiscard makes gets throw the data away instead of writing it
	// to a file in Dir.
	GetToDiscard bool
	// ReadInPlace adds, after the get at 2 replicas, the reads of
	// Report.ReadInPlace: the same file read again with transfer.Get,
	// through keep web and through keep mount.
	ReadInPlace bool
	// CPUProfile, if set, receives a CPU profile of this process during
	// the put at 2 replicas over 4 servers.
	CPUProfile io.Writer
	// GetCPUProfile, if set, receives a CPU profile of this process
	// during the get that follows that put.
	GetCPUProfile io.Writer
	// Progress receives a line as each phase starts and ends. Default:
	// discard.
	Progress io.Writer
}

func (c Config) withDefaults() (Config, error) {
	const op = "bench.Run"
	if c.Launcher == nil {
		return c, errors.New(op + ": no Launcher")
	}
	if c.FileBytes == 0 {
		c.FileBytes = 512 << 20
	}
	if c.SmallFiles == 0 {
		c.SmallFiles = 20000
	}
	if c.SmallFileBytes == 0 {
		c.SmallFileBytes = 4096
	}
	if c.BlocksInFlight == 0 {
		c.BlocksInFlight = 4
	}
	if c.SlowRate == 0 {
		c.SlowRate = 10e6
	}
	if c.Client.Token == "" {
		c.Client.Token = "keep-bench"
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.FileBytes < 0 || c.SmallFiles < 0 || c.SmallFileBytes < 0 || c.BlocksInFlight < 0 || c.SlowRate < 0 {
		return c, errors.New(op + ": negative setting")
	}
	return c, nil
}

// Replica counts and server counts of the measurements.
const (
	mainServers  = 4
	faultServers = 5
	faultN       = 2
)

// bench is the state of one Run.
type bench struct {
	cfg   Config
	tmp   string
	md5   float64 // MB/s per core
	cores int
	runs  uint64 // puts so far, to stamp each one's data
	// inPlace is the outcome of the reads Config.ReadInPlace asks
	// for, once made.
	inPlace *ReadInPlace

	// uncounted holds the puts to the current servers whose storage
	// withServers counts once those servers have stopped.
	uncounted []uncounted
}

// uncounted is a put whose stored bytes are yet to be counted.
type uncounted struct {
	name     string
	blocks   []locator.Locator
	replicas int
	ratio    *float64 // the put's Measurement.StoredRatio, filled in by the count
}

// Run performs the measurements described in the package comment and
// returns the report. It removes its files and stops its servers before
// returning, also when ctx is cancelled.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(cfg.Dir, "keep-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	b := &bench{cfg: cfg, tmp: tmp, cores: runtime.NumCPU()}
	r := &Report{
		Date:           time.Now().Format(time.DateOnly),
		GoVersion:      runtime.Version(),
		CPUModel:       cpuModel(),
		Cores:          b.cores,
		Servers:        cfg.Launcher.Kind(),
		FileBytes:      cfg.FileBytes,
		BlocksInFlight: cfg.BlocksInFlight,
	}

	b.progress("measuring single-stream MD5 (best of 3 × 64 MiB)")
	b.md5 = md5Rate()
	r.MD5MBps = b.md5
	r.MD5CPUPerGiB = ratio((1<<30)/1e6, b.md5)
	r.ReadCeilingMBps = ReadCeiling(b.md5, b.cores)
	b.progress("%.0f MB/s per core, %d cores", b.md5, b.cores)

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.progress("writing test data: a %s file, %d files of %d bytes, a %s file",
		sizeString(cfg.FileBytes), cfg.SmallFiles, cfg.SmallFileBytes, sizeString(b.smallTotal()))
	big := filepath.Join(tmp, "data")
	small := filepath.Join(tmp, "small")
	single := filepath.Join(tmp, "single")
	src := randomSource()
	if err := writeRandomFile(big, cfg.FileBytes, src); err != nil {
		return nil, err
	}
	if err := writeSmallFiles(small, cfg.SmallFiles, cfg.SmallFileBytes, src); err != nil {
		return nil, err
	}
	if err := writeRandomFile(single, b.smallTotal(), src); err != nil {
		return nil, err
	}

	for n := 1; n <= 3; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		put, get, err := b.putAndGet(ctx, big, n)
		if err != nil {
			return nil, err
		}
		r.Put = append(r.Put, put)
		r.Get = append(r.Get, get)
	}
	r.ReadInPlace = b.inPlace
	if r.Faults, err = b.faults(ctx, big); err != nil {
		return nil, err
	}
	if r.SmallFiles, err = b.smallFiles(ctx, small, single); err != nil {
		return nil, err
	}
	return r, nil
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(b.cfg.Progress, "bench: "+format+"\n", args...)
}

func (b *bench) smallTotal() int64 { return int64(b.cfg.SmallFiles) * int64(b.cfg.SmallFileBytes) }

// putAndGet puts the file at path at n replicas over fresh servers,
// then reads it back; at readInPlaceN replicas, with Config.ReadInPlace,
// it then reads it in place too.
func (b *bench) putAndGet(ctx context.Context, path string, n int) (put, get Measurement, err error) {
	err = b.withServers(ctx, mainServers, func(servers []*Server) error {
		svcs := services(servers)
		kc, err := b.client(svcs, n)
		if err != nil {
			return err
		}
		defer kc.Close()
		var m *manifest.Manifest
		put, m, err = b.put(ctx, fmt.Sprintf("put N=%d, %d servers", n, len(svcs)), kc, servers, path, n, len(svcs), n == 2 && b.cfg.CPUProfile != nil)
		if err != nil {
			return err
		}
		get, err = b.get(ctx, fmt.Sprintf("get N=%d data", n), kc, servers, m, n, len(svcs), n == 2 && b.cfg.GetCPUProfile != nil)
		if err != nil || n != readInPlaceN || !b.cfg.ReadInPlace {
			return err
		}
		b.inPlace, err = b.readInPlace(ctx, kc, servers, m)
		return err
	})
	return put, get, err
}

// faults runs the puts at 2 replicas over 5 servers.
func (b *bench) faults(ctx context.Context, path string) (Faults, error) {
	f := Faults{SlowRateMBps: b.cfg.SlowRate / 1e6}
	err := b.withServers(ctx, faultServers, func(servers []*Server) error {
		kc, err := b.client(services(servers), faultN)
		if err != nil {
			return err
		}
		defer kc.Close()
		f.Healthy, _, err = b.put(ctx, "put N=2, 5 healthy", kc, servers, path, faultN, faultServers, false)
		return err
	})
	if err != nil {
		return f, err
	}

	err = b.withServers(ctx, faultServers-1, func(servers []*Server) error {
		dead, err := deadService(faultServers - 1)
		if err != nil {
			return err
		}
		kc, err := b.client(append(services(servers), dead), faultN)
		if err != nil {
			return err
		}
		defer kc.Close()
		f.Down, _, err = b.put(ctx, "put N=2, 1 of 5 down", kc, servers, path, faultN, faultServers, false)
		return err
	})
	if err != nil {
		return f, err
	}
	f.DownRatio = ratio(f.Down.MBps, f.Healthy.MBps)

	err = b.withServers(ctx, faultServers, func(servers []*Server) error {
		svcs := services(servers)
		slow := &svcs[len(svcs)-1]
		th, err := NewThrottle(net.JoinHostPort(slow.Host, strconv.Itoa(slow.Port)), b.cfg.SlowRate)
		if err != nil {
			return err
		}
		defer th.Close()
		slow.Host, slow.Port = "127.0.0.1", th.Addr().Port
		kc, err := b.client(svcs, faultN)
		if err != nil {
			return err
		}
		defer kc.Close()
		f.Slow, _, err = b.put(ctx, fmt.Sprintf("put N=2, 1 of 5 at %g MB/s", f.SlowRateMBps), kc, servers, path, faultN, faultServers, false)
		if err != nil {
			return err
		}
		// Closing the Throttle would cut off bytes it still holds for
		// the slow server, which might complete a block the client has
		// given up on; let it deliver them so that the count after the
		// servers stop sees every copy the client caused.
		kc.Close()
		dctx, cancel := context.WithTimeout(ctx, drainTimeout)
		defer cancel()
		if err := th.Drain(dctx); err != nil {
			b.progress("  the slow server's link is still busy; its last bytes are dropped: %v", err)
		}
		return nil
	})
	if err != nil {
		return f, err
	}
	f.SlowRatio = ratio(f.Slow.MBps, f.Healthy.MBps)
	return f, nil
}

// smallFiles puts the directory of small files, then the single file of
// the same size, at 2 replicas over 4 servers.
func (b *bench) smallFiles(ctx context.Context, dir, single string) (SmallFiles, error) {
	s := SmallFiles{Files: b.cfg.SmallFiles, FileBytes: b.cfg.SmallFileBytes}
	err := b.withServers(ctx, mainServers, func(servers []*Server) error {
		kc, err := b.client(services(servers), 2)
		if err != nil {
			return err
		}
		defer kc.Close()
		if s.Single, _, err = b.put(ctx, fmt.Sprintf("put N=2, one %s file", sizeString(b.smallTotal())), kc, servers, single, 2, mainServers, false); err != nil {
			return err
		}
		s.Put, _, err = b.put(ctx, fmt.Sprintf("put N=2, %d small files", s.Files), kc, servers, dir, 2, mainServers, false)
		return err
	})
	if s.Put.Seconds > 0 {
		s.FilesPerSec = float64(s.Files) / s.Put.Seconds
	}
	s.Ratio = ratio(s.Put.MBps, s.Single.MBps)
	return s, err
}

// drainTimeout bounds the wait for a Throttle to deliver what it holds
// after a put: at the default 10 MB/s, far more than the few MiB that
// socket buffers can hold.
const drainTimeout = 30 * time.Second

// withServers launches n servers in a new directory and calls fn with
// them. It then stops them, so that no write is still under way, counts
// what they store of the blocks of the puts fn made, and removes their
// data.
func (b *bench) withServers(ctx context.Context, n int, fn func([]*Server) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(b.tmp, "servers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.uncounted = nil
	servers, err := b.cfg.Launcher.Launch(ctx, dir, n)
	stop := func() {
		for _, s := range servers {
			s.Stop()
		}
	}
	defer stop() // Stop is idempotent
	if err != nil {
		return err
	}
	if err := fn(servers); err != nil {
		return err
	}
	stop()
	return b.fillStored(servers)
}

// fillStored fills in the StoredRatio of each put in b.uncounted.
func (b *bench) fillStored(servers []*Server) error {
	puts := b.uncounted
	b.uncounted = nil
	for _, p := range puts {
		st, known, err := countStored(servers, p.blocks)
		if err != nil {
			return fmt.Errorf("%s: counting stored blocks: %w", p.name, err)
		}
		if !known || st.blocks == 0 {
			continue // not reached: put checked both
		}
		*p.ratio = st.ratio(p.replicas)
		b.progress("%s: stored/N×size %.3f (%s)", p.name, *p.ratio, st.copiesString())
	}
	return nil
}

// volumesKnown reports whether every server's volume directory is known,
// so that what they store can be counted.
func volumesKnown(servers []*Server) bool {
	for _, s := range servers {
		if s.Dir == "" {
			return false
		}
	}
	return true
}

func services(servers []*Server) []keepclient.Service {
	out := make([]keepclient.Service, len(servers))
	for i, s := range servers {
		out[i] = s.Service
	}
	return out
}

func (b *bench) client(svcs []keepclient.Service, replicas int) (*keepclient.Client, error) {
	opts := b.cfg.Client
	opts.Services = svcs
	opts.Replicas = replicas
	return keepclient.New(opts)
}

// put stores the file or directory at path with transfer.Put and
// measures it, with a CPU profile of this process if profile is set.
// A directory's files are stored under its name, as "keep put DIR" does.
func (b *bench) put(ctx context.Context, name string, kc *keepclient.Client, servers []*Server, path string, replicas, nServers int, profile bool) (Measurement, *manifest.Manifest, error) {
	b.progress("%s", name)
	inputs, size, err := transfer.CollectInputs([]string{path}, transfer.CollectOptions{})
	if err != nil {
		return Measurement{}, nil, err
	}
	if len(inputs) == 1 {
		b.runs++
		if err := stamp(path, size, b.runs); err != nil {
			return Measurement{}, nil, err
		}
	}
	var prof io.Writer
	if profile {
		prof = b.cfg.CPUProfile
	}
	var m *manifest.Manifest
	u, err := measure(servers, prof, func() error {
		var failures []string
		m, failures, err = transfer.Put(ctx, kc, inputs, transfer.PutOptions{BlocksInFlight: b.cfg.BlocksInFlight})
		if err == nil && len(failures) > 0 {
			err = fmt.Errorf("%d blocks fell short: %s", len(failures), strings.Join(failures, "; "))
		}
		return err
	})
	if err != nil {
		return Measurement{}, nil, fmt.Errorf("%s: %w", name, err)
	}
	run := b.newMeasurement(name, replicas, nServers, size, int64(replicas)*size, u)
	run.CeilingMBps = WriteCeiling(b.md5, b.cores, replicas)
	run.CeilingRatio = ratio(run.MBps, run.CeilingMBps)
	// Put has returned, so every upload it started has ended; but a
	// server may still be finishing one the client gave up on, so the
	// count waits until the servers stop (withServers).
	if size > 0 && volumesKnown(servers) {
		run.StoredRatio = new(float64)
		b.uncounted = append(b.uncounted, uncounted{name: name, blocks: m.Blocks(), replicas: replicas, ratio: run.StoredRatio})
	}
	b.progress("  %.0f MB/s (%.2f of the hash ceiling) in %.1fs", run.MBps, run.CeilingRatio, run.Seconds)
	return run, m, nil
}

// get reads m back with transfer.Get and measures it, with a CPU
// profile of this process if profile is set.
func (b *bench) get(ctx context.Context, name string, kc *keepclient.Client, servers []*Server, m *manifest.Manifest, replicas, nServers int, profile bool) (Measurement, error) {
	b.progress("%s", name)
	var size int64
	for _, f := range m.Files {
		size += f.Size()
	}
	out := ""
	if !b.cfg.GetToDiscard {
		out = filepath.Join(b.tmp, "got")
		defer os.Remove(out)
	}
	var prof io.Writer
	if profile {
		prof = b.cfg.GetCPUProfile
	}
	u, err := measure(servers, prof, func() error {
		return transfer.Get(ctx, kc, m, out, io.Discard, transfer.GetOptions{})
	})
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", name, err)
	}
	run := b.newMeasurement(name, replicas, nServers, size, size, u)
	run.CeilingMBps = ReadCeiling(b.md5, b.cores)
	run.CeilingRatio = ratio(run.MBps, run.CeilingMBps)
	b.progress("  %.0f MB/s (%.2f of the hash ceiling) in %.1fs", run.MBps, run.CeilingRatio, run.Seconds)
	return run, nil
}

// newMeasurement fills in a Measurement of moving size bytes, of which
// the servers handled (stored or served) serverBytes.
func (b *bench) newMeasurement(name string, replicas, servers int, size, serverBytes int64, u usage) Measurement {
	secs := u.wall.Seconds()
	gib := float64(size) / (1 << 30)
	r := Measurement{
		Name:            name,
		Replicas:        replicas,
		Servers:         servers,
		Bytes:           size,
		Seconds:         secs,
		MBps:            ratio(float64(size)/1e6, secs),
		ClientCPUPerGiB: ratio(u.client.Seconds(), gib),
	}
	if u.serversKnown {
		t := ratio((u.client + u.servers).Seconds(), gib)
		r.TotalCPUPerGiB = &t
	}
	if u.serversKnown && u.serversSeparate {
		sc := ratio(u.servers.Seconds(), float64(serverBytes)/(1<<30))
		r.ServerCPUPerGiB = &sc
	}
	if u.peak > 0 {
		p := float64(u.peak) / (1 << 20)
		r.PeakClientMiB = &p
	}
	return r
}

// usage is what one measured call consumed.
type usage struct {
	wall         time.Duration
	client       time.Duration // this process's CPU time
	servers      time.Duration // the server processes' CPU time
	serversKnown bool
	// serversSeparate is set when every server is a process of its own,
	// so that servers is all of their CPU time and none of it is in
	// client.
	serversSeparate bool
	peak            int64 // this process's peak RSS in bytes; 0 if unknown
}

// measure calls fn and returns its wall time, the CPU time of this
// process and of the servers' processes, and this process's peak memory.
// If profile is set, it receives a CPU profile of this process during fn.
func measure(servers []*Server, profile io.Writer, fn func() error) (usage, error) {
	var u usage
	peakOK := resetPeakMemory() == nil
	c0, err := selfCPU()
	if err != nil {
		return u, err
	}
	s0, known := serversCPU(servers)
	if profile != nil {
		if err := pprof.StartCPUProfile(profile); err != nil {
			return u, err
		}
	}
	start := time.Now()
	err = fn()
	u.wall = time.Since(start)
	c1, cerr := selfCPU()
	s1, known1 := serversCPU(servers)
	if profile != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return u, err
	}
	if cerr != nil {
		return u, cerr
	}
	u.client = c1 - c0
	u.servers, u.serversKnown = s1-s0, known && known1
	u.serversSeparate = len(servers) > 0
	for _, s := range servers {
		if s.PID == 0 {
			u.serversSeparate = false
		}
	}
	if peakOK {
		u.peak, _ = peakMemory()
	}
	return u, nil
}

// serversCPU sums the CPU time of the servers' processes. It reports
// false when a server's CPU time cannot be known: it runs elsewhere or
// its /proc entry cannot be read. Servers in this process count as the
// client's.
func serversCPU(servers []*Server) (time.Duration, bool) {
	var total time.Duration
	for _, s := range servers {
		switch {
		case s.remote:
			return 0, false
		case s.PID == 0:
			continue
		}
		t, err := processCPU(s.PID)
		if err != nil {
			return 0, false
		}
		total += t
	}
	return total, true
}

// md5Rate returns the best of three single-stream crypto/md5 rates over
// a 64 MiB buffer, in MB/s.
func md5Rate() float64 {
	buf := make([]byte, 64<<20)
	rand.NewChaCha8([32]byte{}).Read(buf) // touch every page before timing
	var best float64
	for range 3 {
		start := time.Now()
		md5.Sum(buf)
		best = max(best, float64(len(buf))/1e6/time.Since(start).Seconds())
	}
	return best
}

// cpuModel returns the first "model name" in /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
