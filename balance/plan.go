// Package balance works out what a Keep cluster must do to hold every
// block it should, as many times as it should, in the places a write
// would choose, and nothing else: which blocks to pull to which servers
// and which copies to trash. It is the logic of Arvados keep-balance,
// speaking the keepstore management API (GET /mounts, GET
// /mounts/UUID/blocks, PUT /pull, PUT /trash).
//
// The decision is a pure function (Compute) of an inventory of the
// cluster, the live set of blocks with their wanted replication, and the
// time; reading the inventory and sending the lists are done at the edge
// (Fetch, Send). The safety rules, in the order they are applied:
//
//   - a block the live set references is never trashed below its wanted
//     count, and its last copy is never trashed;
//   - a copy beyond the wanted count is trashed only once the wanted
//     copies are confirmed in their ideal places;
//   - no copy younger than the signing TTL is ever trashed (a signature
//     given out for it may still be used to read it, or to prove it was
//     written);
//   - when any server's index could not be read completely, no trash is
//     sent at all: a block missing from a partial index might be the one
//     copy that makes the others extra;
//   - copies are counted a volume at a time: a volume (a mount uuid)
//     that several servers list holds one copy, is trashed at most once,
//     and is never the target of a pull for a block it holds; one device
//     id under two uuids is refused as a configuration error;
//   - copies on different volumes with identical mtimes may be one file
//     seen twice (an NFS export, a bucket under two uuids): none is
//     trashed while another is kept, and at most one is trashed in a run.
//
// A block no manifest references is garbage: once all its copies are
// older than the signing TTL they are all trashed (they stay recoverable
// until the servers' trash lifetime ends) — unless
// Options.KeepUnreferenced says the live set may not be whole, when
// garbage is counted and kept.
package balance

import (
	"slices"
	"sort"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// Mount is one volume of a server, as GET /mounts describes it.
type Mount = protocol.Mount

// Server is one block server and its mounts.
type Server struct {
	Service keepclient.Service
	Mounts  []Mount
	// Complete reports whether every mount's index was read to its end.
	Complete bool
}

// writable reports whether a pull may write to the server.
func (s *Server) writable() bool {
	if s.Service.ReadOnly {
		return false
	}
	for _, m := range s.Mounts {
		if m.AllowWrite {
			return true
		}
	}
	return false
}

// Copy is one stored copy of a block, as an index lists it.
type Copy struct {
	Server int    // index into Inventory.Servers of the server whose index listed it
	Mount  string // mount (volume) uuid; "" for a server read through GET /index
	Size   int64
	Mtime  int64 // UnixNano, as the index gives it
}

// Inventory is what the servers hold.
//
// A volume (a mount uuid) may be listed by several servers, as a bucket
// or an NFS export served by each is; it is one volume, holding one copy
// of a block however many servers, or indexes, list it.
type Inventory struct {
	Servers []Server
	// Copies lists the copies of each block, by hash.
	Copies map[string][]Copy
	// Warnings are failures Fetch got past: a shared volume's index
	// that one server could not give and another did.
	Warnings []error
}

// Want is the live set: the replicas wanted for each referenced block, by
// hash, with its size.
type Want map[string]Wanted

// Wanted is what the live set asks of one block.
type Wanted struct {
	Size     int64
	Replicas int
}

// PullItem asks a server to fetch a block from others, as PUT /pull
// takes it.
type PullItem = protocol.PullItem

// TrashItem asks a server to trash its copy of a block on a mount, as PUT
// /trash takes it. BlockMtime must match the copy's, so that a block
// written again since the index was read is kept.
type TrashItem = protocol.TrashItem

// Class is how a block stands against its wanted replication.
type Class int

const (
	OK           Class = iota // wanted copies, in their ideal places
	Under                     // fewer copies than wanted, at least one
	Lost                      // wanted, and no copy anywhere
	Over                      // more copies than wanted
	Misplaced                 // enough copies, but not all in ideal places
	Unreferenced              // stored, and no manifest references it
	numClasses
)

var classNames = [numClasses]string{"ok", "under-replicated", "lost", "over-replicated", "misplaced", "unreferenced"}

func (c Class) String() string { return classNames[c] }

// Tally counts blocks and their bytes (one copy each).
type Tally struct {
	Blocks int
	Bytes  int64
}

// Plan is what Compute decided.
type Plan struct {
	// Pulls and Trash are the lists for each server, by service URL.
	// Every server with a writable mount gets a list, empty or not, so
	// that sending them replaces whatever an earlier run asked. Trash is
	// nil when TrashWithheld.
	Pulls map[string][]PullItem
	Trash map[string][]TrashItem
	// Summary counts the blocks of each class.
	Summary [numClasses]Tally
	// Blocks lists the state of every block, by hash.
	Blocks map[string]BlockState
	// TrashWithheld reports that some index was incomplete, so no trash
	// was planned.
	TrashWithheld bool
}

// BlockState is how one block stands.
type BlockState struct {
	Class Class
	// Replicas counts its copies a volume at a time: the sum of the
	// replication of the volumes holding it.
	Replicas int
}

// Options are the parameters of a balance run.
type Options struct {
	// Now is the time the inventory was read.
	Now time.Time
	// SigningTTL is the permission signature lifetime (Arvados
	// Collections.BlobSigningTTL): no copy younger than this is trashed.
	SigningTTL time.Duration
	// KeepUnreferenced plans no trash for blocks the live set wants no
	// copy of (none references them, or those that do want 0
	// replicas), for a live set not known to be whole (some manifest
	// files, not every collection): such blocks are still classed
	// Unreferenced and counted in the summary. Extra copies of wanted
	// blocks are trashed as usual.
	KeepUnreferenced bool
}

// Compute decides the pulls and trash that bring inv to want. It refuses
// an inventory in which one device appears under two volume uuids
// (*DeviceConflictError).
func Compute(inv Inventory, want Want, opts Options) (*Plan, error) {
	l, err := newLayout(inv)
	if err != nil {
		return nil, err
	}
	p := &Plan{Pulls: make(map[string][]PullItem), Trash: make(map[string][]TrashItem), Blocks: make(map[string]BlockState)}
	complete := true
	var writable []keepclient.Service
	byURL := make(map[string]int)
	for i, s := range inv.Servers {
		byURL[s.Service.URL()] = i
		complete = complete && s.Complete
		if s.writable() {
			writable = append(writable, s.Service)
			p.Pulls[s.Service.URL()] = []PullItem{}
			p.Trash[s.Service.URL()] = []TrashItem{}
		}
	}
	p.TrashWithheld = !complete
	oldest := opts.Now.Add(-opts.SigningTTL).UnixNano()

	hashes := make([]string, 0, len(inv.Copies)+len(want))
	for h := range inv.Copies {
		hashes = append(hashes, h)
	}
	for h := range want {
		if _, ok := inv.Copies[h]; !ok {
			hashes = append(hashes, h)
		}
	}
	sort.Strings(hashes)
	for _, h := range hashes {
		w, referenced := want[h]
		copies := inv.Copies[h]
		size := w.Size
		if !referenced && len(copies) > 0 {
			size = copies[0].Size
		}
		b := block{hash: h, size: size, wanted: w.Replicas, l: l}
		if !referenced {
			b.wanted = 0
		}
		b.gather(copies)
		ideal := keepclient.ProbeOrder(h, writable)
		class := b.decide(p, ideal, byURL, oldest, complete, opts.KeepUnreferenced)
		p.Blocks[h] = BlockState{Class: class, Replicas: b.have}
		p.Summary[class].Blocks++
		p.Summary[class].Bytes += size
	}
	if p.TrashWithheld {
		p.Trash = nil // not even empty lists: they would clear the servers' lists
	}
	return p, nil
}

// held is one volume holding a block.
type held struct {
	vol   int
	mtime int64 // the newest any index gave
	mixed bool  // indexes gave different mtimes: it changed while read, keep it
}

// block is one block being decided.
type block struct {
	hash   string
	size   int64
	wanted int
	l      *layout
	held   []held // one per volume holding it
	have   int    // replicas: the sum of the holding volumes' replication
}

func (b *block) locator() string { return locator.Locator{Hash: b.hash, Size: b.size}.String() }

// gather groups copies into the volumes holding them: a volume listed by
// several servers, or twice in one index, holds one copy.
func (b *block) gather(copies []Copy) {
	for _, c := range copies {
		v, ok := b.l.lookup(c)
		if !ok {
			continue // a server index outside the inventory
		}
		if i := b.holding(v); i >= 0 {
			h := &b.held[i]
			h.mixed = h.mixed || h.mtime != c.Mtime
			h.mtime = max(h.mtime, c.Mtime)
			continue
		}
		b.held = append(b.held, held{vol: v, mtime: c.Mtime})
		b.have += b.l.vols[v].replication
	}
}

// sources returns the servers a pull to the server at url may fetch the
// block from, in inventory order: every other server listing a volume
// that holds it, or url itself when it is the only one (it lists such a
// volume).
func (b *block) sources(url string) []string {
	var listing []int
	for _, h := range b.held {
		for _, si := range b.l.vols[h.vol].servers {
			if !slices.Contains(listing, si) {
				listing = append(listing, si)
			}
		}
	}
	slices.Sort(listing)
	var all, others []string
	for _, si := range listing {
		u := b.l.servers[si].Service.URL()
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

// holding returns the index in b.held of volume v, or -1.
func (b *block) holding(v int) int {
	for i, h := range b.held {
		if h.vol == v {
			return i
		}
	}
	return -1
}

// decide classifies the block and adds its pulls and trash to p;
// keepGarbage keeps every copy of a block wanted 0 times.
func (b *block) decide(p *Plan, ideal []keepclient.Service, byURL map[string]int, oldest int64, complete, keepGarbage bool) Class {
	if b.wanted == 0 {
		// Garbage: trash every copy once none is young.
		if keepGarbage {
			return Unreferenced
		}
		for _, h := range b.held {
			if h.mtime > oldest || h.mixed {
				return Unreferenced
			}
		}
		if complete {
			b.trash(p, b.held)
		}
		return Unreferenced
	}
	if b.have == 0 {
		return Lost
	}

	// The ideal places: walking the writable servers in probe order,
	// the volumes that hold the block, or for a server with none, one
	// of its writable volumes that does not, until they hold the wanted
	// replicas. A volume counts once, at the first server listing it: a
	// server whose volumes are all counted adds nothing.
	placed, pulls := 0, 0
	counted := make(map[int]bool, len(b.held)+b.wanted)
	for _, svc := range ideal {
		if placed >= b.wanted {
			break
		}
		si := byURL[svc.URL()]
		found := false
		for _, v := range b.l.onServer[si] {
			if !counted[v] && b.holding(v) >= 0 {
				counted[v], found = true, true
				placed += b.l.vols[v].replication
			}
		}
		if found {
			continue
		}
		var room []int // volumes a pull through this server could add
		for _, v := range b.l.onServer[si] {
			if !counted[v] && slices.Contains(b.l.vols[v].writeVia, si) {
				room = append(room, v)
			}
		}
		if len(room) == 0 {
			continue
		}
		b.l.mountOrder(b.hash, room)
		v := room[0]
		counted[v] = true
		placed += b.l.vols[v].replication
		pulls++
		url := svc.URL()
		p.Pulls[url] = append(p.Pulls[url], PullItem{Locator: b.locator(), Servers: b.sources(url), MountUUID: b.l.vols[v].uuid})
	}

	class := OK
	switch {
	case b.have < b.wanted:
		class = Under
	case pulls > 0:
		class = Misplaced
	case b.have > b.wanted:
		class = Over
	}
	if pulls > 0 || !complete || b.have < b.wanted {
		// Extra copies go only once the wanted ones are confirmed in
		// their ideal places.
		return class
	}
	// Every ideal place holds it: copies elsewhere are extra. Trash them
	// without going below the wanted count, counting copies with one
	// mtime as one: they may be one file seen twice (an NFS export, a
	// bucket under two uuids), which trashing one of them would trash.
	// So a set of copies with one mtime counts for the least replication
	// among them, and is trashed only when none of them is kept.
	type sameMtime struct {
		mtime  int64
		weight int  // the least replication of its volumes
		kept   bool // one of them is in an ideal place, young, or cannot be trashed
		pick   held // the one to trash
	}
	var sets []sameMtime
	sure := 0
	for _, h := range b.held {
		vol := b.l.vols[h.vol]
		i := slices.IndexFunc(sets, func(s sameMtime) bool { return s.mtime == h.mtime })
		if i < 0 {
			sets = append(sets, sameMtime{mtime: h.mtime, weight: vol.replication, pick: h})
			i = len(sets) - 1
			sure += vol.replication
		} else if vol.replication < sets[i].weight {
			sure -= sets[i].weight - vol.replication
			sets[i].weight = vol.replication
		}
		if counted[h.vol] || h.mtime > oldest || h.mixed || vol.trashVia < 0 {
			sets[i].kept = true
		}
	}
	var extra []held
	for _, s := range sets {
		if s.kept || sure-s.weight < b.wanted {
			continue
		}
		sure -= s.weight
		extra = append(extra, s.pick)
	}
	b.trash(p, extra)
	return class
}

// trash adds trash items for the copies on the given volumes. Of copies
// with one mtime only the first is trashed in a run: if they are one
// file seen twice, asking twice is redundant; if not, the next run
// trashes the others.
func (b *block) trash(p *Plan, hs []held) {
	var done []int64
	for _, h := range hs {
		vol := b.l.vols[h.vol]
		if vol.trashVia < 0 || slices.Contains(done, h.mtime) {
			continue
		}
		done = append(done, h.mtime)
		url := b.l.servers[vol.trashVia].Service.URL()
		p.Trash[url] = append(p.Trash[url], TrashItem{Locator: b.locator(), BlockMtime: h.mtime, MountUUID: vol.uuid})
	}
}
