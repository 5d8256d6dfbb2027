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
