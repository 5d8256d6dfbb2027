package balance

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/keepproject/keep/internal/protocol"
)

// A volume is one storage device: a mount uuid, however many servers
// list it. Copies, replicas, pulls and trash are counted per volume, so
// that a bucket or an NFS export served by several servers counts once.
type volume struct {
	uuid        string // "" for a server read through GET /index
	replication int    // the least any server reports, at least 1
	servers     []int  // the servers that list it, in inventory order
	writeVia    []int  // the servers through which it may be written
	trashVia    int    // the first server through which it may be trashed, or -1
}

// layout is the inventory's servers grouped into volumes, worked out once
// per run.
type layout struct {
	servers  []Server
	vols     []volume
	index    map[string]int // volume by key (see volumeKey)
	onServer [][]int        // the volumes each server lists
}

// volumeKey names the volume a copy on mount of server lies on: the
// mount uuid, or for a server without GET /mounts (whose one mount has
// no uuid) a key of that server alone.
func volumeKey(mount string, server int) string {
	if mount == "" {
		return "\x00" + strconv.Itoa(server)
	}
	return mount
}

// DeviceConflictError reports one storage device listed under two volume
// uuids. Balancing would count its copies twice, and trashing "the
// extra" one could trash the only one: it is a configuration error, as
// Arvados keep-balance also treats it.
type DeviceConflictError struct {
	DeviceID     string
	First, Other string // "volume uuid on server"
}

// Error says which device, under which uuids, on which servers.
func (e *DeviceConflictError) Error() string {
	return fmt.Sprintf("device %s is listed as volume %s and as volume %s; one device must have one volume uuid (a configuration error: fix the servers' volume uuids before balancing)", e.DeviceID, e.First, e.Other)
}

// checkDevices returns a *DeviceConflictError if one device id appears
// under two volume uuids.
func checkDevices(servers []Server) error {
	type seen struct{ uuid, where string }
	device := make(map[string]seen)
	for _, s := range servers {
		for _, m := range s.Mounts {
			if m.DeviceID == "" || m.UUID == "" {
				continue
			}
			where := fmt.Sprintf("%s on %s", m.UUID, s.Service)
			first, ok := device[m.DeviceID]
			if ok && first.uuid != m.UUID {
				return &DeviceConflictError{DeviceID: m.DeviceID, First: first.where, Other: where}
			}
			if !ok {
				device[m.DeviceID] = seen{m.UUID, where}
			}
		}
	}
	return nil
}

// groupVolumes groups the servers' mounts into volumes: one per mount
// uuid, however many servers list it, and one per server read through
// GET /index.
func groupVolumes(servers []Server) *layout {
	l := &layout{servers: servers, index: make(map[string]int), onServer: make([][]int, len(servers))}
	for si, s := range servers {
		for _, m := range s.Mounts {
			vol := &l.vols[l.volume(m.UUID, si)]
			if r := max(m.Replication, 1); vol.replication == 0 || r < vol.replication {
				vol.replication = r
			}
			if !s.Service.ReadOnly && m.AllowWrite {
				vol.writeVia = append(vol.writeVia, si)
				if m.AllowTrash && vol.trashVia < 0 {
					vol.trashVia = si
				}
			}
		}
	}
	return l
}

// volume returns the index of the volume that mount of server lies on,
// adding it, or server to its list, if need be.
func (l *layout) volume(mount string, server int) int {
	key := volumeKey(mount, server)
	v, ok := l.index[key]
	if !ok {
		v = len(l.vols)
		l.vols = append(l.vols, volume{uuid: mount, trashVia: -1})
		l.index[key] = v
	}
	if vol := &l.vols[v]; !slices.Contains(vol.servers, server) {
		vol.servers = append(vol.servers, server)
		l.onServer[server] = append(l.onServer[server], v)
	}
	return v
}

// mountOrder sorts volume indexes in a block's order among a server's
// mounts: the order in which our server picks a mount for a block when
// a pull names none (protocol.SortMounts).
func (l *layout) mountOrder(hash string, vols []int) {
	protocol.SortMounts(hash, vols, func(v int) string { return l.vols[v].uuid })
}

// replicas returns the replicas the volumes holding a block make: the
// sum of their replication.
func (l *layout) replicas(hs []held) int {
	n := 0
	for _, h := range hs {
		n += l.vols[h.vol].replication
	}
	return n
}
