package balance

import (
	"fmt"
	"slices"
)

// Inventory is what the servers hold and what the live set wants of
// each block, kept compactly (about 56 bytes a block with two copies):
// Fetch fills it from the servers' indexes, Want from the live set.
//
// A volume (a mount uuid) may be listed by several servers, as a bucket
// or an NFS export served by each is; it is one volume, holding one copy
// of a block however many servers, or indexes, list it.
type Inventory struct {
	// Servers are the block servers and their mounts. Fetch sets them;
	// a caller adding copies itself sets them first, and they do not
	// change once copies are added.
	Servers []Server
	// Warnings are failures Fetch got past: a shared volume's index
	// that one server could not give and another did.
	Warnings []error

	s *store
	l *layout
}

// NewInventory returns an empty inventory.
func NewInventory() *Inventory { return &Inventory{s: newStore()} }

// Want records that the live set references the block hash (32 hex
// digits) of size bytes, wanting replicas copies of it; of several
// references, the one wanting the most counts.
func (inv *Inventory) Want(hash string, size int64, replicas int) error {
	h, ok := parseHash([]byte(hash))
	if !ok {
		return fmt.Errorf("live set: %q: %w", hash, errBadHash)
	}
	return inv.s.want(h, size, max(replicas, 0))
}

// AddCopy records a copy of the block hash, as an index lists it. Its
// server must be one of inv.Servers; a mount the server does not list
// (an index can name anything) is a volume of its own, which counts once
// and is never written or trashed.
func (inv *Inventory) AddCopy(hash string, c Copy) error {
	h, ok := parseHash([]byte(hash))
	if !ok {
		return fmt.Errorf("copy: %q: %w", hash, errBadHash)
	}
	if c.Server < 0 || c.Server >= len(inv.Servers) {
		return fmt.Errorf("copy of %s: no server %d in the inventory", hash, c.Server)
	}
	l := inv.layout()
	v := l.volume(c.Mount, c.Server)
	if l.vols[v].replication == 0 {
		l.vols[v].replication = 1
	}
	return inv.s.addCopy(h, c.Size, v, c.Mtime)
}

// layout returns the servers grouped into volumes, working it out the
// first time.
func (inv *Inventory) layout() *layout {
	if inv.l == nil {
		inv.l = groupVolumes(inv.Servers)
	}
	return inv.l
}

// Blocks returns the number of blocks stored or referenced.
func (inv *Inventory) Blocks() int { return inv.s.len() }

// Referenced returns the number of blocks the live set references.
func (inv *Inventory) Referenced() int { return inv.s.wanted }

// Stored returns the number of blocks with a copy on some volume.
func (inv *Inventory) Stored() int { return inv.s.stored }

// CopyCount returns the number of copies: a block's copy on a volume
// counts once however many servers list the volume.
func (inv *Inventory) CopyCount() int { return inv.s.copies }

// Copies returns the copies of the block hash, one per volume holding
// it, each with the first server listing that volume.
func (inv *Inventory) Copies(hash string) []Copy {
	h, ok := parseHash([]byte(hash))
	if !ok {
		return nil
	}
	id, ok := inv.s.lookup(h)
	if !ok {
		return nil
	}
	copies, _ := inv.copies(id, nil, nil)
	return copies
}

// copies appends the copies of block id to dst; buf is scratch space,
// returned for reuse.
func (inv *Inventory) copies(id uint32, dst []Copy, buf []held) ([]Copy, []held) {
	size := int64(inv.s.blocks.at(id).size)
	buf = inv.s.appendHeld(buf[:0], id)
	for _, h := range buf {
		v := inv.l.vols[h.vol]
		dst = append(dst, Copy{Server: v.servers[0], Mount: v.uuid, Size: size, Mtime: h.mtime})
	}
	return dst, buf
}

// volumeServers appends to dst the servers listing the volumes that
// hold block id, in inventory order.
func (inv *Inventory) volumeServers(id uint32, dst []int) []int {
	for _, h := range inv.s.appendHeld(nil, id) {
		for _, si := range inv.l.vols[h.vol].servers {
			if !slices.Contains(dst, si) {
				dst = append(dst, si)
			}
		}
	}
	slices.Sort(dst)
	return dst
}
