package keepstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/keepproject/keep/internal/version"
)

// Status is the server state served as JSON at /_status.
type Status struct {
	// Volumes describes each volume served, in configuration order,
	// then each missing one (see VolumeStatus.Missing).
	Volumes []VolumeStatus `json:"volumes"`
	// MaxConcurrentRequests is the configured limit on reads and index
	// listings.
	MaxConcurrentRequests int `json:"max_concurrent_requests"`
	// MaxConcurrentWrites is the configured limit on uploads.
	MaxConcurrentWrites int `json:"max_concurrent_writes"`
	// WritesInFlight is the number of write slots held now.
	WritesInFlight int `json:"writes_in_flight"`
	// MinUploadRate is the minimum upload rate in bytes per second, or 0
	// for none.
	MinUploadRate int64 `json:"min_upload_rate"`
	// UploadGraceSeconds is the waiting an upload may use on top of the
	// minimum rate.
	UploadGraceSeconds float64 `json:"upload_grace_seconds"`
	// PullQueue and TrashQueue report the pull and trash lists.
	PullQueue  WorkStatus `json:"pull_queue"`
	TrashQueue WorkStatus `json:"trash_queue"`
}

// VolumeStatus describes one volume in a Status.
type VolumeStatus struct {
	// ID is the volume's ID, as used for rendezvous ordering.
	ID string `json:"id"`
	// Path is the volume's directory (or label).
	Path string `json:"path"`
	// ReadOnly reports whether the server refrains from writing to it.
	ReadOnly bool `json:"read_only"`
	// Classes are the volume's storage classes, sorted.
	Classes []string `json:"classes"`
	// Replication is the replica count the volume stands for.
	Replication int `json:"replication"`
	// Usage is the volume's occupancy.
	Usage
	// Missing reports a configured volume the server could not open at
	// start (its disk not mounted, its bucket unreachable) and serves
	// without; Error says why. ID is empty when only the volume itself
	// knew it.
	Missing bool `json:"missing,omitempty"`
	// Scan is the progress of the volume's scan at open, for volumes
	// that make one (see Scanner).
	Scan *ScanStatus `json:"scan,omitempty"`
	// Error is why Usage could not be fully read, if it could not, or
	// why a missing volume could not be opened.
	Error string `json:"error,omitempty"`
}

// Scanner is implemented by volumes that, once open, go over what they
// hold in the background (a Directory volume counts its blocks and
// removes the temporary files of interrupted writes), so that a server
// starts serving at once; /_status shows its progress.
type Scanner interface {
	ScanStatus() ScanStatus
}

// ScanStatus is the progress of a volume's background scan.
type ScanStatus struct {
	// State is "running", "done", "failed" (Error says why: Usage
	// stays a lower bound) or "canceled" (the volume was closed).
	State string `json:"state"`
	// Blocks and Bytes are what the scan has counted so far.
	Blocks int64 `json:"blocks"`
	Bytes  int64 `json:"bytes"`
	// DirsDone of Dirs directories are scanned.
	Dirs     int `json:"dirs"`
	DirsDone int `json:"dirs_done"`
	// TempFilesRemoved counts the temporary files of interrupted
	// writes the scan removed.
	TempFilesRemoved int `json:"temp_files_removed"`
	// Seconds is how long the scan has run, or took.
	Seconds float64 `json:"seconds"`
	// Error is why the scan failed.
	Error string `json:"error,omitempty"`
}

// Status reports the server's volumes and their usage.
func (s *Server) Status(ctx context.Context) Status {
	st := Status{
		MaxConcurrentRequests: s.maxRequests,
		MaxConcurrentWrites:   s.maxWrites,
		WritesInFlight:        s.writes.inUse(),
		MinUploadRate:         s.minRate,
		UploadGraceSeconds:    s.grace.Seconds(),
		PullQueue:             s.pulls.status(),
		TrashQueue:            s.trashes.status(),
		Volumes:               make([]VolumeStatus, 0, len(s.mounts)),
	}
	for _, m := range s.mounts {
		vs := VolumeStatus{ID: m.id, Path: m.path, ReadOnly: m.readOnly, Classes: m.classes, Replication: m.replication}
		u, err := m.vol.Usage(ctx)
		vs.Usage = u
		if err != nil {
			vs.Error = err.Error()
		}
		if sc, ok := m.vol.(Scanner); ok {
			ss := sc.ScanStatus()
			vs.Scan = &ss
		}
		st.Volumes = append(st.Volumes, vs)
	}
	for _, mv := range s.missing {
		st.Volumes = append(st.Volumes, VolumeStatus{ID: mv.id, Path: mv.path, ReadOnly: mv.readOnly, Missing: true,
			Usage: Usage{FreeBytes: -1}, Error: mv.err.Error()})
	}
	return st
}

// health is the /_health/ping answer: Arvados' "health" ("OK", or
// "ERROR" with "error" saying why) and the build serving it.
type health struct {
	Health  string `json:"health"`
	Error   string `json:"error,omitempty"`
	Version string `json:"version"`
}

// health reports "ERROR" while a configured volume is missing: the
// server serves the others, but its operator has a disk to bring back.
func (s *Server) health() health {
	h := health{Health: "OK", Version: version.String()}
	if n := len(s.missing); n > 0 {
		msgs := make([]string, n)
		for i, mv := range s.missing {
			msgs[i] = mv.err.Error()
		}
		h.Health = "ERROR"
		h.Error = fmt.Sprintf("%d of %d volumes missing, serving the others: %s", n, n+len(s.mounts), strings.Join(msgs, "; "))
	}
	return h
}
