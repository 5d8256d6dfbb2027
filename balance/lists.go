package balance

import (
	"iter"

	"github.com/keepproject/keep/locator"
)

// HasLists reports whether server i (an index into the inventory's
// Servers) gets lists: every server with a writable mount does, empty
// or not, so that sending them replaces whatever an earlier run asked.
func (p *Plan) HasLists(i int) bool { return p.lists[i].has }

// PullCount returns the number of pulls for server i.
func (p *Plan) PullCount(i int) int { return len(p.lists[i].pulls) }

// TrashCount returns the number of trash items for server i: none when
// TrashWithheld.
func (p *Plan) TrashCount(i int) int { return len(p.lists[i].trash) }

// Pulls yields the pull list of server i, in hash order, each item made
// as it is yielded.
func (p *Plan) Pulls(i int) iter.Seq[PullItem] {
	return func(yield func(PullItem) bool) {
		url := p.inv.Servers[i].Service.URL()
		var servers []int
		for _, r := range p.lists[i].pulls {
			servers = p.inv.volumeServers(r.block, servers[:0])
			if !yield(PullItem{Locator: p.locator(r.block), Servers: p.sources(servers, url), MountUUID: p.inv.l.vols[r.vol].uuid}) {
				return
			}
		}
	}
}

// sources returns the URLs of servers a pull to url may fetch from:
// every other one of them, or url itself when it is the only one.
func (p *Plan) sources(servers []int, url string) []string {
	var all, others []string
	for _, si := range servers {
		u := p.inv.Servers[si].Service.URL()
		all = append(all, u)
		if u != url {
			others = append(others, u)
		}
	}
	if len(others) == 0 {
		return all
	}
	return others
}

// Trash yields the trash list of server i, in hash order.
func (p *Plan) Trash(i int) iter.Seq[TrashItem] {
	return func(yield func(TrashItem) bool) {
		for _, r := range p.lists[i].trash {
			h := r.c.held()
			if !yield(TrashItem{Locator: p.locator(r.block), BlockMtime: h.mtime, MountUUID: p.inv.l.vols[h.vol].uuid}) {
				return
			}
		}
	}
}

// locator returns block id's "hash+size".
func (p *Plan) locator(id uint32) string {
	b := p.inv.s.blocks.at(id)
	return locator.Locator{Hash: b.hash.String(), Size: int64(b.size)}.String()
}

// Block returns how the block hash stands, if the inventory has it.
func (p *Plan) Block(hash string) (BlockState, bool) {
	h, ok := parseHash([]byte(hash))
	if !ok {
		return BlockState{}, false
	}
	id, ok := p.inv.s.lookup(h)
	if !ok {
		return BlockState{}, false
	}
	return p.state(id), true
}

func (p *Plan) state(id uint32) BlockState {
	return BlockState{Class: Class(p.class[id]), Replicas: p.inv.l.replicas(p.inv.s.appendHeld(nil, id))}
}

// BlockInfo is one block as the plan found it.
type BlockInfo struct {
	Hash string
	Size int64
	// Referenced reports whether the live set references it, wanting
	// Wanted copies.
	Referenced bool
	Wanted     int
	BlockState
	// Copies are its copies, one per volume (see Inventory.Copies),
	// valid until the next block is yielded.
	Copies []Copy
}

// Blocks yields every block of the inventory in hash order.
func (p *Plan) Blocks() iter.Seq[BlockInfo] {
	return func(yield func(BlockInfo) bool) {
		var (
			copies []Copy
			buf    []held
		)
		for id := range p.inv.s.inOrder {
			b := p.inv.s.blocks.at(id)
			copies, buf = p.inv.copies(id, copies[:0], buf)
			st := BlockState{Class: Class(p.class[id]), Replicas: p.inv.l.replicas(buf)}
			info := BlockInfo{Hash: b.hash.String(), Size: int64(b.size), Referenced: b.wanted > 0, Wanted: max(int(b.wanted)-1, 0), BlockState: st, Copies: copies}
			if !yield(info) {
				return
			}
		}
	}
}
