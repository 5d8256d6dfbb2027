package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/keepproject/keep/bench"
	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/internal/s3local"
	"github.com/keepproject/keep/keepclient"
)

const benchSummary = "Measure put and get throughput on this machine against the limit its MD5\n" +
	"hashing sets: a large random file at 1, 2 and 3 replicas over 4 servers,\n" +
	"2 replicas over 5 servers with one down and with one slow, and many small\n" +
	"files, and the file read in place through keep web and keep mount beside\n" +
	"keep get. Each measurement starts fresh 'keep server' processes in a\n" +
	"temporary directory, unless --services names servers to use instead.\n" +
	"Each put also reports stored/N×size: the bytes the servers hold of the\n" +
	"blocks it wrote over N × their size, 1.000 when every block has exactly\n" +
	"N copies (not measured with --services).\n" +
	"Prints a table on stdout and progress on stderr."

// benchFlags is keep bench's command line.
type benchFlags struct {
	size                   int64
	smallFiles, inflight   int
	slowRate               float64
	quick                  bool
	jsonFile               string
	cpuProfile, getProfile string
	dir                    string
	discard, inProcess     bool
	serverBin              string
	compareS3, useS3       bool
	s3Bin                  string
	compareSync            bool
	readInPlace            bool
	cf                     clientFlags
}

func (f *benchFlags) register(fs *flag.FlagSet) {
	fs.Int64Var(&f.size, "size", 512<<20, "large file size in `bytes`")
	fs.IntVar(&f.smallFiles, "small-files", 20000, "number of 4 KiB files")
	fs.IntVar(&f.inflight, "blocks-in-flight", 4, "blocks uploaded at once")
	fs.Float64Var(&f.slowRate, "slow-rate", 10, "link rate of the slow server, in `MB/s` each way")
	fs.BoolVar(&f.quick, "quick", false, "small run: 128 MiB file and 2000 small files unless --size or --small-files say otherwise")
	fs.StringVar(&f.jsonFile, "json", "", "also write the results as JSON to `file` (with --compare-s3 or --compare-sync: both runs and the comparison)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the put at 2 replicas over 4 servers to `file`")
	fs.StringVar(&f.getProfile, "get-cpuprofile", "", "write a CPU profile of the get that follows that put to `file`")
	fs.StringVar(&f.dir, "dir", "", "`directory` for the temporary files and server volumes (default: the system's)")
	fs.BoolVar(&f.discard, "get-discard", false, "discard data read back instead of writing it to a file")
	fs.BoolVar(&f.inProcess, "in-process", false, "run the servers in this process (their CPU time then counts as the client's)")
	fs.StringVar(&f.serverBin, "server-bin", "", "keep `binary` to run servers with (default: this program)")
	fs.BoolVar(&f.compareS3, "compare-s3", false, "run twice, on directory volumes and then on S3 buckets (as --s3), and compare the rates")
	fs.BoolVar(&f.useS3, "s3", false, "the servers keep their blocks in buckets of a local S3 server (versitygw) started for the run, rather than in directories")
	fs.StringVar(&f.s3Bin, "s3-server", "", "with --s3: the versitygw `binary` (default: as for keep up --s3)")
	fs.BoolVar(&f.compareSync, "compare-sync", false, "run twice, with the servers syncing each block to disk before answering (as always) and then with 'keep server --no-sync', and compare the rates: what durable writes cost (put the volumes on a real disk with --dir)")
	fs.BoolVar(&f.readInPlace, "read-in-place", true, "after the get at 2 replicas, read the same file again with keep get's code, through keep web (HTTP on 127.0.0.1) and through keep mount (FUSE, where this process may mount), each beside the get's rate")
	f.cf.register(fs)
}

// check refuses a command line keep bench cannot run, and applies
// --quick.
func (f *benchFlags) check(fs *flag.FlagSet, pos []string) error {
	if len(pos) != 0 || f.size < 1 || f.smallFiles < 1 || f.inflight < 1 || f.slowRate <= 0 {
		fs.Usage()
		return errUsage
	}
	if f.quick {
		set := flagsSet(fs)
		if !set["size"] {
			f.size = 128 << 20
		}
		if !set["small-files"] {
			f.smallFiles = 2000
		}
	}
	if f.compareSync && (f.compareS3 || f.cf.services != "" || f.inProcess) {
		return usageError(fs, "--compare-sync runs its own server processes: it cannot be combined with --compare-s3, --services or --in-process")
	}
	return nil
}

// benchOptions is what keep bench runs: one configuration, and with
// --compare-s3 or --compare-sync a second run to compare with it.
type benchOptions struct {
	cfg                    bench.Config
	second                 *benchSecond // nil: one run
	jsonFile               string
	cpuProfile, getProfile string
}

// benchSecond is the second run of a comparison: its servers, the line
// before its table, and which run the rates are compared over.
type benchSecond struct {
	launcher              bench.Launcher
	title                 string
	firstName, secondName string
	overSecond            bool // the first run's rates over the second's, not the reverse
}

// options finds or starts what the flags ask the servers to run on; the
// function returned stops what it started.
func (f *benchFlags) options(ctx context.Context, stderr io.Writer) (*benchOptions, func(), error) {
	o := &benchOptions{jsonFile: f.jsonFile, cpuProfile: f.cpuProfile, getProfile: f.getProfile, cfg: bench.Config{
		Dir:            f.dir,
		FileBytes:      f.size,
		SmallFiles:     f.smallFiles,
		BlocksInFlight: f.inflight,
		SlowRate:       f.slowRate * 1e6,
		GetToDiscard:   f.discard,
		ReadInPlace:    f.readInPlace,
		Progress:       stderr,
		Client:         keepclient.Options{Token: localToken, MaxPasses: f.cf.passes, MaxRequests: f.cf.requests},
	}}
	stop := func() {}
	switch {
	case f.cf.services != "":
		res := discovery.New(discovery.Config{ServicesFile: f.cf.services})
		svcs, err := res.Services(ctx)
		if err != nil {
			return nil, nil, err
		}
		o.cfg.Launcher = bench.External{Services: svcs}
		o.cfg.Client.Token = keepToken(res)
		o.cfg.Client.Insecure = res.Insecure()
	case f.inProcess:
		o.cfg.Launcher = bench.InProcess{}
	default:
		var err error
		if stop, err = f.processes(o); err != nil {
			return nil, nil, err
		}
	}
	return o, stop, nil
}

// processes sets o up to run keep server processes, on S3 buckets with
// --s3 or --compare-s3 (the function returned stops the S3 server), and
// without syncing in the second run of --compare-sync.
func (f *benchFlags) processes(o *benchOptions) (func(), error) {
	bin := f.serverBin
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("finding this program to run servers: %w", err)
		}
		bin = exe
	}
	o.cfg.Launcher = bench.Processes{Command: []string{bin, "server"}}
	stop := func() {}
	if f.useS3 || f.compareS3 {
		p, stopS3, err := s3Processes(bin, f.dir, f.s3Bin)
		if err != nil {
			return nil, err
		}
		stop = stopS3
		if f.compareS3 {
			o.second = &benchSecond{launcher: p, title: "The same on S3 buckets of a local versitygw:", firstName: "dir", secondName: "S3"}
		} else {
			o.cfg.Launcher = p
		}
	}
	if f.compareSync {
		noSync := o.cfg.Launcher.(bench.Processes) // on directories, or on S3 with --s3
		noSync.Command = append(slices.Clone(noSync.Command), "--no-sync")
		o.second = &benchSecond{launcher: noSync, title: "The same with the servers not syncing (keep server --no-sync):",
			firstName: "sync", secondName: "no-sync", overSecond: true}
	}
	return stop, nil
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "", benchSummary, stderr)
	var f benchFlags
	if err := parseLeadingFlags(fs, &f, args); err != nil {
		return err
	}
	o, stop, err := f.options(ctx, stderr)
	if err != nil {
		return err
	}
	defer stop()
	return o.run(ctx, stdout)
}

// run measures, prints the tables and writes the JSON file.
func (o *benchOptions) run(ctx context.Context, stdout io.Writer) error {
	var profiles []*os.File
	for _, p := range []struct {
		path string
		dst  *io.Writer
	}{{o.cpuProfile, &o.cfg.CPUProfile}, {o.getProfile, &o.cfg.GetCPUProfile}} {
		if p.path == "" {
			continue
		}
		f, err := os.Create(p.path)
		if err != nil {
			return err
		}
		defer f.Close()
		*p.dst = f
		profiles = append(profiles, f)
	}
	report, err := bench.Run(ctx, o.cfg)
	if err != nil {
		return err
	}
	for _, f := range profiles {
		if err := f.Close(); err != nil {
			return err
		}
	}
	if err := report.WriteTable(stdout); err != nil {
		return err
	}
	var result any = report
	if o.second != nil {
		if result, err = o.second.run(ctx, o.cfg, report, stdout); err != nil {
			return err
		}
	}
	return writeJSON(o.jsonFile, result)
}

// run measures cfg again with the second run's servers, after first,
// and prints its table and the comparison.
func (s *benchSecond) run(ctx context.Context, cfg bench.Config, first *bench.Report, stdout io.Writer) (*bench.Comparison, error) {
	fmt.Fprintln(stdout, "\n"+s.title)
	cfg.Launcher, cfg.CPUProfile, cfg.GetCPUProfile = s.launcher, nil, nil
	second, err := bench.Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := second.WriteTable(stdout); err != nil {
		return nil, err
	}
	c := bench.Compare(s.firstName, first, s.secondName, second)
	if s.overSecond {
		c = bench.Compare(s.secondName, second, s.firstName, first)
	}
	return c, c.WriteTable(stdout)
}

// writeJSON writes v as indented JSON to the file at path; nothing
// when path is "".
func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// s3Processes returns a launcher of keep server processes whose volumes
// are buckets of a local S3 server it starts, and a function stopping
// that server.
func s3Processes(bin, dir, s3Bin string) (bench.Processes, func(), error) {
	s3dir, err := os.MkdirTemp(dir, "keep-bench-s3")
	if err != nil {
		return bench.Processes{}, nil, err
	}
	s3srv, err := s3local.Start(s3Bin, s3dir)
	if err != nil {
		os.RemoveAll(s3dir)
		return bench.Processes{}, nil, err
	}
	stop := func() {
		s3srv.Stop()
		os.RemoveAll(s3dir)
	}
	var buckets atomic.Int64
	p := bench.Processes{Command: []string{bin, "server"}}
	p.Volume = func(i int, _ string) (string, string, error) {
		b := fmt.Sprintf("server-%d-%d", i, buckets.Add(1))
		if err := s3srv.NewBucket(b); err != nil {
			return "", "", err
		}
		return s3srv.VolumeURL(b), filepath.Join(s3srv.Root, b), nil
	}
	return p, stop, nil
}
