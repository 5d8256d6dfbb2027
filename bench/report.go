package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Report is the outcome of Run. Rates are in MB/s (10^6 bytes per
// second); CPU is in CPU-seconds per GiB moved. Pointer fields are nil
// (null in JSON) when the benchmark could not measure them, for example
// the servers' CPU time when they run elsewhere.
type Report struct {
	Date      string `json:"date"`
	GoVersion string `json:"go_version"`
	CPUModel  string `json:"cpu_model"`
	Cores     int    `json:"cores"`
	// MD5MBps is one core's crypto/md5 rate over a 64 MiB buffer, best
	// of three.
	MD5MBps float64 `json:"md5_mb_per_s_per_core"`
	// MD5CPUPerGiB is what one MD5 pass over a GiB costs at that rate,
	// in CPU-seconds: the unit the CPU goals are stated in.
	MD5CPUPerGiB float64 `json:"md5_cpu_s_per_gib"`
	// ReadCeilingMBps is ReadCeiling for this machine.
	ReadCeilingMBps float64 `json:"read_ceiling_mb_per_s"`
	Servers         string  `json:"servers"`
	FileBytes       int64   `json:"file_bytes"`
	BlocksInFlight  int     `json:"blocks_in_flight"`
	// Put holds the puts at 1, 2 and 3 replicas over 4 servers.
	Put []Measurement `json:"put"`
	// Get holds the reads of the data of each Put run, in the same order.
	Get        []Measurement `json:"get"`
	Faults     Faults        `json:"faults"`
	SmallFiles SmallFiles    `json:"small_files"`
	// ReadInPlace is nil unless Config.ReadInPlace asked for it.
	ReadInPlace *ReadInPlace `json:"read_in_place"`
}

// Measurement is one timed transfer.
type Measurement struct {
	Name     string  `json:"name"`
	Replicas int     `json:"replicas"`
	Servers  int     `json:"servers"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	MBps     float64 `json:"mb_per_s"`
	// CeilingMBps is the hash ceiling for the transfer (WriteCeiling or
	// ReadCeiling) and CeilingRatio the fraction of it achieved.
	CeilingMBps  float64 `json:"ceiling_mb_per_s"`
	CeilingRatio float64 `json:"ceiling_ratio"`
	// ClientCPUPerGiB is this process's CPU time per GiB moved;
	// TotalCPUPerGiB adds the server processes'.
	ClientCPUPerGiB float64  `json:"client_cpu_s_per_gib"`
	TotalCPUPerGiB  *float64 `json:"total_cpu_s_per_gib"`
	// ServerCPUPerGiB is the server processes' CPU time per GiB they
	// handled: per GiB stored for a put (Replicas × Bytes, the copies
	// asked for), per GiB served for a get (Bytes).
	ServerCPUPerGiB *float64 `json:"server_cpu_s_per_gib"`
	// PeakClientMiB is this process's peak resident set during the run.
	PeakClientMiB *float64 `json:"peak_client_mib"`
	// StoredRatio is, for a put, the bytes the servers' volumes hold of
	// the blocks it wrote, divided by Replicas × the bytes of those
	// blocks: exactly 1 when every block is stored Replicas times, more
	// when some block was stored more often. It is counted once the
	// servers have stopped, so uploads the client abandoned but a server
	// finished count too. Nil for gets, and when the servers' volumes
	// are unknown (External).
	StoredRatio *float64 `json:"stored_ratio"`
}

// Faults compares puts at 2 replicas over 5 servers, with the client's
// default options: all healthy, one refusing connections, and one behind
// a slow link. DownRatio and SlowRatio are those runs' MB/s divided by
// the healthy run's.
type Faults struct {
	Healthy      Measurement `json:"healthy"`
	Down         Measurement `json:"one_down"`
	DownRatio    float64     `json:"one_down_ratio"`
	SlowRateMBps float64     `json:"slow_rate_mb_per_s"`
	Slow         Measurement `json:"one_slow"`
	SlowRatio    float64     `json:"one_slow_ratio"`
}

// SmallFiles compares putting many small files in one transfer.Put call
// with putting one file of the same total size, both at 2 replicas over
// 4 servers.
type SmallFiles struct {
	Files       int         `json:"files"`
	FileBytes   int         `json:"file_bytes"`
	Put         Measurement `json:"put"`
	FilesPerSec float64     `json:"files_per_s"`
	Single      Measurement `json:"single_file"`
	Ratio       float64     `json:"ratio_to_single_file"`
}

// WriteCeiling is the put rate the machine's hashing allows at replicas
// copies: the client hashes each block once and every server storing it
// hashes it again, so replicas+1 MD5 passes share the cores.
func WriteCeiling(md5PerCore float64, cores, replicas int) float64 {
	return float64(cores) * md5PerCore / float64(replicas+1)
}

// ReadCeiling is the get rate the machine's hashing allows: the server
// checks each block as it sends it and the client checks it again.
func ReadCeiling(md5PerCore float64, cores int) float64 {
	return float64(cores) * md5PerCore / 2
}

// ratio returns a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// measurements returns every measurement, in table order.
func (r *Report) measurements() []Measurement {
	f, s := r.Faults, r.SmallFiles
	out := append(append([]Measurement(nil), r.Put...), r.Get...)
	return append(out, f.Healthy, f.Down, f.Slow, s.Single, s.Put)
}

// WriteTable prints the report as aligned text.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "keep bench %s: %d cores (%s), %s, %s\n", r.Date, r.Cores, r.CPUModel, r.GoVersion, r.Servers)
	fmt.Fprintf(&b, "MD5 %.0f MB/s per core; hash ceiling: put", r.MD5MBps)
	for _, p := range r.Put {
		fmt.Fprintf(&b, " N=%d %.0f,", p.Replicas, p.CeilingMBps)
	}
	fmt.Fprintf(&b, " get %.0f MB/s\n", r.ReadCeilingMBps)
	fmt.Fprintf(&b, "one MD5 pass: %.2f CPU-s/GiB; client CPU per GiB moved, server CPU per GiB stored (put) or served (get)\n", r.MD5CPUPerGiB)
	fmt.Fprintf(&b, "file %s, %d blocks in flight; MB = 10^6 bytes, CPU in CPU-seconds per GiB\n", sizeString(r.FileBytes), r.BlocksInFlight)
	fmt.Fprintf(&b, "stored/N×size: bytes the volumes hold of the blocks a put wrote, over N × their size (1.000: exactly N copies)\n\n")

	// Numbers align right; names are padded to one width so they align
	// left.
	rows := r.measurements()
	width := 0
	for _, m := range rows {
		width = max(width, len(m.Name))
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tMB/s\tof ceiling\tvs healthy\tclient CPU\tserver CPU\ttotal CPU\tpeak MiB\tstored/N×size\t\n", width, "run")
	row := func(r Measurement, vs string) {
		fmt.Fprintf(tw, "%-*s\t%.0f\t%.2f\t%s\t%.2f\t%s\t%s\t%s\t%s\t\n",
			width, r.Name, r.MBps, r.CeilingRatio, vs, r.ClientCPUPerGiB,
			optional(r.ServerCPUPerGiB, "%.2f"), optional(r.TotalCPUPerGiB, "%.2f"), optional(r.PeakClientMiB, "%.0f"), optional(r.StoredRatio, "%.3f"))
	}
	for _, p := range r.Put {
		row(p, "-")
	}
	for _, g := range r.Get {
		row(g, "-")
	}
	f := r.Faults
	row(f.Healthy, "1.00")
	row(f.Down, fmt.Sprintf("%.2f", f.DownRatio))
	row(f.Slow, fmt.Sprintf("%.2f", f.SlowRatio))
	row(r.SmallFiles.Single, "-")
	row(r.SmallFiles.Put, "-")
	if err := tw.Flush(); err != nil {
		return err
	}
	s := r.SmallFiles
	fmt.Fprintf(&b, "\nsmall files: %d files of %d bytes at %.0f files/s, %.0f MB/s: %.2f of one %s file's %.0f MB/s\n",
		s.Files, s.FileBytes, s.FilesPerSec, s.Put.MBps, s.Ratio, sizeString(s.Single.Bytes), s.Single.MBps)
	if r.ReadInPlace != nil {
		if err := r.ReadInPlace.writeTable(&b, r.FileBytes); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func optional(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

// sizeString formats n bytes in the largest binary unit that divides it
// (or MiB with a fraction).
func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
