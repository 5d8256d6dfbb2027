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
//     copy that makes the others extra.
//
// A block no manifest references is garbage: once all its copies are
// older than the signing TTL they are all trashed (they stay recoverable
// until the servers' trash lifetime ends).
package balance

import (
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
	Server int    // index into Inventory.Servers
	Mount  string // mount uuid
	Size   int64
	Mtime  int64 // UnixNano, as the index gives it
}

// Inventory is what the servers hold.
type Inventory struct {
	Servers []Server
	// Copies lists the copies of each block, by hash.
	Copies map[string][]Copy
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
	// Blocks lists the class of every block, by hash.
	Blocks map[string]Class
	// TrashWithheld reports that some index was incomplete, so no trash
	// was planned.
	TrashWithheld bool
}

// Options are the parameters of a balance run.
type Options struct {
	// Now is the time the inventory was read.
	Now time.Time
	// SigningTTL is the permission signature lifetime (Arvados
	// Collections.BlobSigningTTL): no copy younger than this is trashed.
	SigningTTL time.Duration
}

// Compute decides the pulls and trash that bring inv to want.
func Compute(inv Inventory, want Want, opts Options) *Plan {
	p := &Plan{Pulls: make(map[string][]PullItem), Trash: make(map[string][]TrashItem), Blocks: make(map[string]Class)}
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
		b := block{hash: h, size: size, wanted: w.Replicas, copies: copies, servers: inv.Servers}
		if !referenced {
			b.wanted = 0
		}
		ideal := keepclient.ProbeOrder(h, writable)
		class := b.decide(p, ideal, byURL, oldest, complete)
		p.Blocks[h] = class
		p.Summary[class].Blocks++
		p.Summary[class].Bytes += size
	}
	if p.TrashWithheld {
		p.Trash = nil // not even empty lists: they would clear the servers' lists
	}
	return p
}

// block is one block being decided.
type block struct {
	hash    string
	size    int64
	wanted  int
	copies  []Copy
	servers []Server
}

func (b *block) locator() string { return locator.Locator{Hash: b.hash, Size: b.size}.String() }

// replicasOn returns the replicas the copies on server i count for.
func (b *block) replicasOn(i int) int {
	n := 0
	for _, c := range b.copies {
		if c.Server == i {
			n += b.servers[i].replication(c.Mount)
		}
	}
	return n
}

func (s *Server) replication(mount string) int {
	for _, m := range s.Mounts {
		if m.UUID == mount {
			return max(m.Replication, 1)
		}
	}
	return 1
}

func (s *Server) canTrash(mount string) bool {
	if s.Service.ReadOnly {
		return false
	}
	for _, m := range s.Mounts {
		if m.UUID == mount {
			return m.AllowTrash && m.AllowWrite
		}
	}
	return false
}

// decide classifies the block and adds its pulls and trash to p.
func (b *block) decide(p *Plan, ideal []keepclient.Service, byURL map[string]int, oldest int64, complete bool) Class {
	have := 0
	holders := make(map[int]bool)
	for _, c := range b.copies {
		if !holders[c.Server] {
			holders[c.Server] = true
			have += b.replicasOn(c.Server)
		}
	}
	var sources []string
	for i := range b.servers {
		if holders[i] {
			sources = append(sources, b.servers[i].Service.URL())
		}
	}

	if b.wanted == 0 {
		// Garbage: trash every copy once none is young.
		for _, c := range b.copies {
			if c.Mtime > oldest {
				return Unreferenced
			}
		}
		if complete {
			for _, c := range b.copies {
				b.trash(p, c)
			}
		}
		return Unreferenced
	}
	if have == 0 {
		return Lost
	}

	// The ideal places: the first writable servers in probe order, as
	// many as it takes to hold the wanted replicas.
	placed, inIdeal := 0, make(map[int]bool)
	var missing []int // ideal servers without a copy
	for _, s := range ideal {
		if placed >= b.wanted {
			break
		}
		i := byURL[s.URL()]
		inIdeal[i] = true
		if holders[i] {
			placed += b.replicasOn(i)
		} else {
			missing = append(missing, i)
			placed++ // a pull there will add (at least) one
		}
	}
	for _, i := range missing {
		p.Pulls[b.servers[i].Service.URL()] = append(p.Pulls[b.servers[i].Service.URL()],
			PullItem{Locator: b.locator(), Servers: sources})
	}

	class := OK
	switch {
	case have < b.wanted:
		class = Under
	case len(missing) > 0:
		class = Misplaced
	case have > b.wanted:
		class = Over
	}
	if len(missing) > 0 || !complete {
		// Extra copies go only once the wanted ones are confirmed in
		// their ideal places.
		return class
	}
	// Every ideal server holds it: copies elsewhere are extra. Trash
	// them, oldest rules first, never going below the wanted count.
	keep := have
	for _, c := range b.copies {
		if inIdeal[c.Server] || c.Mtime > oldest || !b.servers[c.Server].canTrash(c.Mount) {
			continue
		}
		r := b.servers[c.Server].replication(c.Mount)
		if keep-r < b.wanted {
			continue
		}
		keep -= r
		b.trash(p, c)
	}
	return class
}

func (b *block) trash(p *Plan, c Copy) {
	s := &b.servers[c.Server]
	if !s.canTrash(c.Mount) {
		return
	}
	url := s.Service.URL()
	p.Trash[url] = append(p.Trash[url], TrashItem{Locator: b.locator(), BlockMtime: c.Mtime, MountUUID: c.Mount})
}
