package balance

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
)

// world is a cluster as it physically is: devices holding blocks, and
// the servers' mounts of them, some devices shared by several servers
// and some listed under two uuids (the safety net's case: no device id
// to catch it).
type world struct {
	servers []Server
	devices []device
	mountOf map[string]int // volume uuid -> device
	want    Want
	now     time.Time
}

type device struct {
	replication int
	blocks      map[string]int64 // hash -> mtime
}

// randomWorld builds a cluster of 2–6 servers and 2–7 devices, each
// device mounted by 1–3 servers (writable, trashable, replication 1–2 at
// random), some under a second uuid, holding random copies of the test
// blocks with random mtimes, and a random live set.
func randomWorld(r *rand.Rand) *world {
	w := &world{mountOf: map[string]int{}, want: Want{}, now: now}
	nsrv := 2 + r.IntN(5)
	for i := 0; i < nsrv; i++ {
		w.servers = append(w.servers, Server{
			Service:  keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", i), Host: "h", Port: 1000 + i, Type: keepclient.TypeDisk, ReadOnly: r.IntN(10) == 0},
			Complete: r.IntN(10) != 0,
		})
	}
	mtimes := []int64{old, old + 1, old + 2, young}
	for d := 0; d < 2+r.IntN(6); d++ {
		dev := device{replication: 1 + r.IntN(2), blocks: map[string]int64{}}
		for _, h := range hashes {
			if r.IntN(3) == 0 {
				dev.blocks[h] = mtimes[r.IntN(len(mtimes))]
			}
		}
		w.devices = append(w.devices, dev)
		uuids := []string{fmt.Sprintf("zzzzz-nyw5e-%015d", d)}
		deviceID := "dev-" + uuids[0]
		if r.IntN(6) == 0 {
			// The same device under a second uuid, and no device id
			// to tell: only the mtimes give it away.
			uuids = append(uuids, fmt.Sprintf("zzzzz-nyw5e-alias%010d", d))
			deviceID = ""
		}
		for _, u := range uuids {
			w.mountOf[u] = d
			for _, si := range r.Perm(nsrv)[:1+r.IntN(min(3, nsrv))] {
				m := Mount{UUID: u, DeviceID: deviceID, AllowWrite: r.IntN(7) != 0, Replication: dev.replication}
				m.AllowTrash = m.AllowWrite && r.IntN(7) != 0
				if r.IntN(8) == 0 {
					m.Replication = 1 // a server that says less
				}
				w.servers[si].Mounts = append(w.servers[si].Mounts, m)
			}
		}
	}
	for _, h := range hashes {
		if n := r.IntN(4); n > 0 {
			w.want[h] = Wanted{Size: 3, Replicas: n}
		}
	}
	return w
}

// inventory lists what the servers' indexes would: each volume once
// (through a random server listing it) or through every server listing
// it, as an older reader did.
func (w *world) inventory(r *rand.Rand) testInv {
	inv := testInv{Servers: w.servers, Copies: map[string][]Copy{}}
	listed := map[string]bool{}
	for si, s := range w.servers {
		for _, m := range s.Mounts {
			if listed[m.UUID] && r.IntN(2) == 0 {
				continue
			}
			listed[m.UUID] = true
			for h, mtime := range w.devices[w.mountOf[m.UUID]].blocks {
				inv.Copies[h] = append(inv.Copies[h], Copy{Server: si, Mount: m.UUID, Size: 3, Mtime: mtime})
			}
		}
	}
	return inv
}

// physical returns the replicas of hash that really exist: each device
// holding it once, with its replication.
func (w *world) physical(hash string) int {
	n := 0
	for _, d := range w.devices {
		if _, ok := d.blocks[hash]; ok {
			n += d.replication
		}
	}
	return n
}

// apply carries out the plan's trash as the servers would, checking
// each item, then its pulls, and reports what was wrong with the plan.
func (w *world) apply(p *testPlan) error {
	oldest := w.now.Add(-ttl).UnixNano()
	held := map[string]bool{} // "device hash" before the plan
	for d, dev := range w.devices {
		for h := range dev.blocks {
			held[fmt.Sprint(d, h)] = true
		}
	}
	server := func(url string) *Server {
		for i := range w.servers {
			if w.servers[i].Service.URL() == url {
				return &w.servers[i]
			}
		}
		return nil
	}
	for url, items := range p.Trash {
		s := server(url)
		if s == nil {
			return fmt.Errorf("a trash list for %s, no such server", url)
		}
		for _, it := range items {
			i := slices.IndexFunc(s.Mounts, func(m Mount) bool { return m.UUID == it.MountUUID })
			if i < 0 || !s.Mounts[i].AllowWrite || !s.Mounts[i].AllowTrash || s.Service.ReadOnly {
				return fmt.Errorf("trash %+v sent to %s, which may not trash that mount", it, url)
			}
			if it.BlockMtime > oldest {
				return fmt.Errorf("trash %+v of a copy younger than the TTL", it)
			}
			d := w.devices[w.mountOf[it.MountUUID]]
			if d.blocks[it.Locator[:32]] == it.BlockMtime {
				delete(d.blocks, it.Locator[:32])
			}
		}
	}
	for url, items := range p.Pulls {
		s := server(url)
		if s == nil {
			return fmt.Errorf("a pull list for %s, no such server", url)
		}
		for _, it := range items {
			i := slices.IndexFunc(s.Mounts, func(m Mount) bool { return m.UUID == it.MountUUID })
			if i < 0 || !s.Mounts[i].AllowWrite || s.Service.ReadOnly {
				return fmt.Errorf("pull %+v sent to %s, which may not write that mount", it, url)
			}
			d := w.devices[w.mountOf[it.MountUUID]]
			if held[fmt.Sprint(w.mountOf[it.MountUUID], it.Locator[:32])] {
				return fmt.Errorf("pull %+v to %s: the volume already holds the block", it, url)
			}
			d.blocks[it.Locator[:32]] = w.now.UnixNano()
		}
	}
	return nil
}

// Over random clusters with shared volumes, applying each plan leaves
// every referenced block with at least min(wanted, copies before)
// physical replicas, never trashes a young copy, never pulls to a
// volume holding the block; and repeated runs (time passing, pulls done)
// keep that true. In every other world garbage is kept
// (KeepUnreferenced): there no block outside the live set loses a copy.
func TestComputeRandomShared(t *testing.T) {
	const worlds, rounds = 3000, 4
	var pulls, trash, shared, aliased, keptGarbage int
	for seed := uint64(0); seed < worlds; seed++ {
		r := rand.New(rand.NewPCG(seed, 18))
		w := randomWorld(r)
		keep := seed%2 == 1 // not drawn from r: the worlds stay as they were
		for u := range w.mountOf {
			if strings.Contains(u, "alias") {
				aliased++
			}
		}
		listings := map[string]int{}
		for _, s := range w.servers {
			for _, m := range s.Mounts {
				if listings[m.UUID]++; listings[m.UUID] == 2 {
					shared++
				}
			}
		}
		for round := 0; round < rounds; round++ {
			before := map[string]int{}
			for _, h := range hashes {
				before[h] = w.physical(h)
			}
			p, err := testCompute(t, w.inventory(r), w.want, Options{Now: w.now, SigningTTL: ttl, KeepUnreferenced: keep})
			if err != nil {
				t.Fatalf("seed %d round %d: %v", seed, round, err)
			}
			for _, items := range p.Pulls {
				pulls += len(items)
			}
			for _, items := range p.Trash {
				trash += len(items)
			}
			if err := w.apply(p); err != nil {
				t.Fatalf("seed %d round %d: %v", seed, round, err)
			}
			for h, wt := range w.want {
				if got := w.physical(h); got < min(wt.Replicas, before[h]) {
					t.Fatalf("seed %d round %d: block %s wanted %d, had %d physical replicas, has %d after the plan", seed, round, h[:8], wt.Replicas, before[h], got)
				}
			}
			for _, h := range hashes {
				if _, wanted := w.want[h]; wanted || !keep || before[h] == 0 {
					continue
				}
				keptGarbage++
				if got := w.physical(h); got < before[h] {
					t.Fatalf("seed %d round %d: unreferenced block %s kept (KeepUnreferenced) had %d physical replicas, has %d after the plan", seed, round, h[:8], before[h], got)
				}
			}
			w.now = w.now.Add(2 * ttl)
		}
	}
	t.Logf("%d worlds: %d shared volumes, %d aliases, %d pulls, %d trash items, %d rounds keeping garbage", worlds, shared, aliased, pulls, trash, keptGarbage)
	if shared == 0 || aliased == 0 || pulls == 0 || trash == 0 || keptGarbage == 0 {
		t.Error("the worlds did not exercise shared volumes, aliases, pulls, trash and kept garbage")
	}
}
