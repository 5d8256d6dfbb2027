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
	"runtime"
	"slices"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
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

// Plan is what Compute decided: the pull and trash lists for each
// server, and how each block stands. It refers to the inventory, which
// must not change while the plan is used.
type Plan struct {
	// Summary counts the blocks of each class.
	Summary [numClasses]Tally
	// TrashWithheld reports that some index was incomplete, so no trash
	// was planned.
	TrashWithheld bool

	inv   *Inventory
	lists []lists // by server, as inv.Servers
	class []uint8 // by block record number
	mem   *mapped // of class
}

// lists are one server's pulls and trash, compactly.
type lists struct {
	has   bool // the server has a writable mount: it gets lists, empty or not
	pulls []pullRef
	trash []trashRef
}

// pullRef asks for a block on a volume; trashRef for a copy's removal.
type (
	pullRef struct {
		block uint32
		vol   uint16
	}
	trashRef struct {
		block uint32
		c     copyRec
	}
)

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

// Compute decides the pulls and trash that bring the inventory to what
// its live set wants. It refuses an inventory in which one device
// appears under two volume uuids (*DeviceConflictError).
func Compute(inv *Inventory, opts Options) (*Plan, error) {
	if err := checkDevices(inv.Servers); err != nil {
		return nil, err
	}
	l := inv.layout()
	p, err := newPlan(inv)
	if err != nil {
		return nil, err
	}
	complete := true
	var writable []int // servers, by index
	var svcs []keepclient.Service
	for i, s := range inv.Servers {
		complete = complete && s.Complete
		if s.writable() {
			writable = append(writable, i)
			svcs = append(svcs, s.Service)
			p.lists[i].has = true
		}
	}
	p.TrashWithheld = !complete
	d := decider{
		p: p, l: l, prober: keepclient.NewProber(svcs), writable: writable,
		oldest: opts.Now.Add(-opts.SigningTTL).UnixNano(), complete: complete, keepGarbage: opts.KeepUnreferenced,
	}
	// In record order, which reads the records one after another; the
	// lists are sorted by hash afterwards.
	for id := range uint32(inv.s.len()) {
		class, size := d.decide(id)
		p.class[id] = uint8(class)
		p.Summary[class].Blocks++
		p.Summary[class].Bytes += size
	}
	for i := range p.lists {
		l := &p.lists[i]
		if p.TrashWithheld {
			l.trash = nil
		}
		inv.s.sortByHash(len(l.pulls), func(k int) uint32 { return l.pulls[k].block }, func(a, b int) { l.pulls[a], l.pulls[b] = l.pulls[b], l.pulls[a] })
		inv.s.sortByHash(len(l.trash), func(k int) uint32 { return l.trash[k].block }, func(a, b int) { l.trash[a], l.trash[b] = l.trash[b], l.trash[a] })
	}
	return p, nil
}

// newPlan returns an empty plan for inv. Its classes, a byte a block,
// are mapped outside the heap (see chunked), and given back once the
// plan is unreachable.
func newPlan(inv *Inventory) (*Plan, error) {
	p := &Plan{inv: inv, lists: make([]lists, len(inv.Servers)), mem: &mapped{frees: map[*byte]func(){}}}
	runtime.AddCleanup(p, (*mapped).releaseAll, p.mem)
	class, err := offheapMake[uint8](p.mem, inv.s.len())
	p.class = class
	return p, err
}

// decider decides one block after another, reusing its buffers.
type decider struct {
	p                     *Plan
	l                     *layout
	prober                *keepclient.Prober
	writable              []int // the servers a pull may go to, by index
	oldest                int64 // copies with a later mtime are young
	complete, keepGarbage bool

	hex   []byte
	ideal []int
	b     block
}

// decide classifies block id, adds its pulls and trash to the plan, and
// returns its class and size.
func (d *decider) decide(id uint32) (Class, int64) {
	s := d.p.inv.s
	rec := s.blocks.at(id)
	d.b = block{id: id, l: d.l, held: s.appendHeld(d.b.held[:0], id), counted: d.b.counted, room: d.b.room}
	d.b.wanted = max(int(rec.wanted)-1, 0)
	d.b.have = d.l.replicas(d.b.held)
	var class Class
	switch {
	case d.b.wanted == 0:
		class = d.b.garbage(d.p, d.oldest, d.complete, d.keepGarbage)
	case d.b.have == 0:
		class = Lost
	default:
		d.hex = rec.hash.appendHex(d.hex[:0])
		d.ideal = d.ideal[:0]
		for _, k := range d.prober.Order(d.ideal, d.hex) {
			d.ideal = append(d.ideal, d.writable[k])
		}
		class = d.b.place(d.p, d.ideal, d.hex, d.oldest, d.complete)
	}
	return class, int64(rec.size)
}

// held is one volume holding a block.
type held struct {
	vol   int
	mtime int64 // the newest any index gave
	mixed bool  // indexes gave different mtimes: it changed while read, keep it
}

// block is one block being decided.
type block struct {
	id     uint32
	wanted int
	l      *layout
	held   []held // one per volume holding it
	have   int    // replicas: the sum of the holding volumes' replication

	counted map[int]bool // volumes counted toward the wanted replicas
	room    []int
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

// garbage decides a block the live set wants no copy of: every copy is
// trashed once none is young; keepGarbage keeps them all.
func (b *block) garbage(p *Plan, oldest int64, complete, keepGarbage bool) Class {
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

// place classifies a wanted block with copies and adds its pulls and
// trash to p. ideal is the writable servers in its probe order; hex its
// hash.
func (b *block) place(p *Plan, ideal []int, hex []byte, oldest int64, complete bool) Class {

	// The ideal places: walking the writable servers in probe order,
	// the volumes that hold the block, or for a server with none, one
	// of its writable volumes that does not, until they hold the wanted
	// replicas. A volume counts once, at the first server listing it: a
	// server whose volumes are all counted adds nothing.
	placed, pulls := 0, 0
	if b.counted == nil {
		b.counted = make(map[int]bool)
	}
	counted := b.counted
	clear(counted)
	for _, si := range ideal {
		if placed >= b.wanted {
			break
		}
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
		room := b.room[:0] // volumes a pull through this server could add
		for _, v := range b.l.onServer[si] {
			if !counted[v] && slices.Contains(b.l.vols[v].writeVia, si) {
				room = append(room, v)
			}
		}
		b.room = room
		if len(room) == 0 {
			continue
		}
		if len(room) > 1 {
			b.l.mountOrder(string(hex), room)
		}
		v := room[0]
		counted[v] = true
		placed += b.l.vols[v].replication
		pulls++
		p.lists[si].pulls = append(p.lists[si].pulls, pullRef{block: b.id, vol: uint16(v)})
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
	for i, h := range hs {
		vol := b.l.vols[h.vol]
		if vol.trashVia < 0 || slices.ContainsFunc(hs[:i], func(o held) bool { return o.mtime == h.mtime && b.l.vols[o.vol].trashVia >= 0 }) {
			continue
		}
		l := &p.lists[vol.trashVia]
		l.trash = append(l.trash, trashRef{block: b.id, c: newCopyRec(h.vol, h.mtime)})
	}
}
