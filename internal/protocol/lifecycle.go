package protocol

// The JSON shapes of the management API that keep-balance speaks to
// keepstore (GET /mounts, PUT /pull, PUT /trash).

// Mount is one volume of a server, as GET /mounts describes it.
type Mount struct {
	UUID           string          `json:"uuid"`
	DeviceID       string          `json:"device_id"`
	ReadOnly       bool            `json:"read_only"`
	AllowWrite     bool            `json:"allow_write"`
	AllowTrash     bool            `json:"allow_trash"`
	Replication    int             `json:"replication"`
	StorageClasses map[string]bool `json:"storage_classes"`
}

// PullItem asks a server to fetch a block from others (Servers, as base
// URLs) and store it on a mount (or, with MountUUID empty, on the first
// writable mount in the block's order), as PUT /pull takes it.
type PullItem struct {
	Locator   string   `json:"locator"`
	Servers   []string `json:"servers"`
	MountUUID string   `json:"mount_uuid"`
}

// TrashItem asks a server to trash its copy of a block on a mount (or,
// with MountUUID empty, on every mount), as PUT /trash takes it.
// BlockMtime (Unix nanoseconds) must match the copy's, so that a block
// written again since the index was read is kept.
type TrashItem struct {
	Locator    string `json:"locator"`
	BlockMtime int64  `json:"block_mtime"`
	MountUUID  string `json:"mount_uuid"`
}

// ListReport is what became of the items of a server's current pull or
// trash list, as GET /pull and GET /trash report it: the list the last
// PUT sent, counted from when it arrived.
type ListReport struct {
	Items      int `json:"items"`       // items the list had when it arrived
	Queued     int `json:"queued"`      // not yet started
	InProgress int `json:"in_progress"` // being worked on
	Done       int `json:"done"`
	Skipped    int `json:"skipped"` // left alone by rule (too new, changed, already there)
	Failed     int `json:"failed"`
	// Failures are the first MaxReportedFailures items that failed, with
	// the reason.
	Failures []ItemFailure `json:"failures"`
}

// MaxReportedFailures bounds ListReport.Failures.
const MaxReportedFailures = 1000

// ItemFailure is one list item that failed, and why.
type ItemFailure struct {
	Locator   string `json:"locator"`
	MountUUID string `json:"mount_uuid"`
	Error     string `json:"error"`
}

// Finished reports whether every item of the list has been worked.
func (r ListReport) Finished() bool { return r.Queued == 0 && r.InProgress == 0 }
