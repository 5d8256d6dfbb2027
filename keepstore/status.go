package keepstore

import "context"

// Status is the server state served as JSON at /_status.
type Status struct {
	// Volumes describes each volume, in configuration order.
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
	// Error is why Usage could not be fully read, if it could not.
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
		st.Volumes = append(st.Volumes, vs)
	}
	return st
}
