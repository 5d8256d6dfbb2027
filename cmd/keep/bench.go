package main

import (
	"context"
	"encoding/json"
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

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", "", "Measure put and get throughput on this machine against the limit its MD5\n"+
		"hashing sets: a large random file at 1, 2 and 3 replicas over 4 servers,\n"+
		"2 replicas over 5 servers with one down and with one slow, and many small\n"+
		"files. Each measurement starts fresh 'keep server' processes in a\n"+
		"temporary directory, unless --services names servers to use instead.\n"+
		"Each put also reports stored/N×size: the bytes the servers hold of the\n"+
		"blocks it wrote over N × their size, 1.000 when every block has exactly\n"+
		"N copies (not measured with --services).\n"+
		"Prints a table on stdout and progress on stderr.", stderr)
	size := fs.Int64("size", 512<<20, "large file size in `bytes`")
	smallFiles := fs.Int("small-files", 20000, "number of 4 KiB files")
	inflight := fs.Int("blocks-in-flight", 4, "blocks uploaded at once")
	slowRate := fs.Float64("slow-rate", 10, "link rate of the slow server, in `MB/s` each way")
	quick := fs.Bool("quick", false, "small run: 128 MiB file and 2000 small files unless --size or --small-files say otherwise")
	jsonFile := fs.String("json", "", "also write the results as JSON to `file`")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the put at 2 replicas over 4 servers to `file`")
	getProfile := fs.String("get-cpuprofile", "", "write a CPU profile of the get that follows that put to `file`")
	dir := fs.String("dir", "", "`directory` for the temporary files and server volumes (default: the system's)")
	discard := fs.Bool("get-discard", false, "discard data read back instead of writing it to a file")
	inProcess := fs.Bool("in-process", false, "run the servers in this process (their CPU time then counts as the client's)")
	serverBin := fs.String("server-bin", "", "keep `binary` to run servers with (default: this program)")
	compareS3 := fs.Bool("compare-s3", false, "run twice, on directory volumes and then on S3 buckets (as --s3), and compare the rates")
	useS3 := fs.Bool("s3", false, "the servers keep their blocks in buckets of a local S3 server (versitygw) started for the run, rather than in directories")
	s3Bin := fs.String("s3-server", "", "with --s3: the versitygw `binary` (default: as for keep up --s3)")
	compareSync := fs.Bool("compare-sync", false, "run twice, with the servers syncing each block to disk before answering (as always) and then with 'keep server --no-sync', and compare the rates: what durable writes cost (put the volumes on a real disk with --dir)")
	var cf clientFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *size < 1 || *smallFiles < 1 || *inflight < 1 || *slowRate <= 0 {
		fs.Usage()
		return errUsage
	}
	if *quick {
		set := flagsSet(fs)
		if !set["size"] {
			*size = 128 << 20
		}
		if !set["small-files"] {
			*smallFiles = 2000
		}
	}

	if *compareSync && (*compareS3 || cf.services != "" || *inProcess) {
		return usageError(fs, "--compare-sync runs its own server processes: it cannot be combined with --compare-s3, --services or --in-process")
	}
	var second bench.Launcher // with --compare-s3 or --compare-sync
	var secondName, secondShort string
	cfg := bench.Config{
		Dir:            *dir,
		FileBytes:      *size,
		SmallFiles:     *smallFiles,
		BlocksInFlight: *inflight,
		SlowRate:       *slowRate * 1e6,
		GetToDiscard:   *discard,
		Progress:       stderr,
		Client:         keepclient.Options{Token: localToken, MaxPasses: cf.passes, MaxRequests: cf.requests},
	}
	switch {
	case cf.services != "":
		res := discovery.New(discovery.Config{ServicesFile: cf.services})
		svcs, err := res.Services(ctx)
		if err != nil {
			return err
		}
		cfg.Launcher = bench.External{Services: svcs}
		if tok := res.Token(); tok != "" {
			cfg.Client.Token = tok
		} else if tok := os.Getenv("KEEP_TOKEN"); tok != "" {
			cfg.Client.Token = tok
		}
		cfg.Client.Insecure = res.Insecure()
	case *inProcess:
		cfg.Launcher = bench.InProcess{}
	default:
		bin := *serverBin
		if bin == "" {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this program to run servers: %w", err)
			}
			bin = exe
		}
		cfg.Launcher = bench.Processes{Command: []string{bin, "server"}}
		if *useS3 || *compareS3 {
			p, stop, err := s3Processes(bin, *dir, *s3Bin)
			if err != nil {
				return err
			}
			defer stop()
			if *compareS3 {
				second, secondName, secondShort = p, "The same on S3 buckets of a local versitygw:", "S3"
			} else {
				cfg.Launcher = p
			}
		}
	}
	if *compareSync {
		p := cfg.Launcher.(bench.Processes)
		p.Command = append(slices.Clone(p.Command), "--no-sync")
		second, secondName, secondShort = p, "The same with the servers not syncing (keep server --no-sync):", "no-sync"
	}
	var profiles []*os.File
	for _, p := range []struct {
		path string
		dst  *io.Writer
	}{{*cpuProfile, &cfg.CPUProfile}, {*getProfile, &cfg.GetCPUProfile}} {
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

	report, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if second != nil {
		if err := report.WriteTable(stdout); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "\n"+secondName)
		cfg.Launcher, cfg.CPUProfile, cfg.GetCPUProfile = second, nil, nil
		other, err := bench.Run(ctx, cfg)
		if err != nil {
			return err
		}
		if err := other.WriteTable(stdout); err != nil {
			return err
		}
		if *compareSync {
			writeComparison(stdout, "no-sync", "sync", other, report)
		} else {
			writeComparison(stdout, "dir", secondShort, report, other)
		}
		return nil
	}
	for _, f := range profiles {
		if err := f.Close(); err != nil {
			return err
		}
	}
	if err := report.WriteTable(stdout); err != nil {
		return err
	}
	if *jsonFile != "" {
		data, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonFile, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
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

// writeComparison prints, run by run for the runs both reports have, the
// rates of the report named b over those of the one named a.
func writeComparison(w io.Writer, a, b string, ra, rb *bench.Report) {
	fmt.Fprintf(w, "\n%s over %s, measured in this run:\n\n  %-28s %12s %12s %12s\n", b, a, "run", a+" MB/s", b+" MB/s", b+"/"+a)
	rates := map[string]float64{}
	for _, m := range append(append([]bench.Measurement(nil), ra.Put...), ra.Get...) {
		rates[m.Name] = m.MBps
	}
	for _, m := range append(append([]bench.Measurement(nil), rb.Put...), rb.Get...) {
		if d, ok := rates[m.Name]; ok && d > 0 {
			fmt.Fprintf(w, "  %-28s %12.0f %12.0f %12.2f\n", m.Name, d, m.MBps, m.MBps/d)
		}
	}
}
