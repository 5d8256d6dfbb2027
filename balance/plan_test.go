package balance

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/keepclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	now    = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ttl    = 14 * 24 * time.Hour
	old    = now.Add(-2 * ttl).UnixNano()
	young  = now.Add(-time.Hour).UnixNano()
	hashes = []string{"acbd18db4cc2f85cedef654fccc4a4d8", "37b51d194a7513e45b56f6524f2d51f2", "73feffa4b7f6bb68e44cf984c85f6e88"}
)

// cluster returns n servers with one writable, trashable mount each.
func cluster(n int) []Server {
	var out []Server
	for i := 0; i < n; i++ {
		out = append(out, Server{
			Service:  keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", i), Host: "h", Port: 1000 + i, Type: keepclient.TypeDisk},
			Mounts:   []Mount{{UUID: fmt.Sprintf("zzzzz-nyw5e-%015d", i), AllowWrite: true, AllowTrash: true, Replication: 1}},
			Complete: true,
		})
	}
	return out
}

// order returns the servers' indexes in hash's probe order.
func order(servers []Server, hash string) []int {
	var svcs []keepclient.Service
	idx := map[string]int{}
	for i, s := range servers {
		svcs = append(svcs, s.Service)
		idx[s.Service.URL()] = i
	}
	var out []int
	for _, s := range keepclient.ProbeOrder(hash, svcs) {
		out = append(out, idx[s.URL()])
	}
	return out
}

// on returns copies of a block on the given servers' first mounts, with
// mtime plus the server's index in nanoseconds: distinct copies written
// at different times, as copies usually are (see TestComputeSameMtime).
func on(servers []Server, mtime int64, at ...int) []Copy {
	var out []Copy
	for _, i := range at {
		out = append(out, Copy{Server: i, Mount: servers[i].Mounts[0].UUID, Size: 3, Mtime: mtime + int64(i)})
	}
	return out
}

// lists renders the plan's pulls and trash as "P<server>" and "T<server>"
// entries, sorted, for one block.
func renderLists(servers []Server, p *testPlan) string {
	var out []string
	for i, s := range servers {
		for range p.Pulls[s.Service.URL()] {
			out = append(out, fmt.Sprint("P", i))
		}
		for range p.Trash[s.Service.URL()] {
			out = append(out, fmt.Sprint("T", i))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestCompute(t *testing.T) {
	h := hashes[0]
	s := cluster(5)
	o := order(s, h) // o[0], o[1] are the ideal places for 2 replicas
	tests := []struct {
		name    string
		copies  []Copy
		wanted  int // 0: unreferenced
		servers func([]Server) []Server
		class   Class
		lists   string // with o[k] written as the server index
	}{
		{"ok", on(s, old, o[0], o[1]), 2, nil, OK, ""},
		{"under: pull to the ideal place", on(s, old, o[0]), 2, nil, Under, fmt.Sprint("P", o[1])},
		{"lost", nil, 2, nil, Lost, ""},
		{"misplaced: pull, keep the other copy for now", on(s, old, o[0], o[3]), 2, nil, Misplaced, fmt.Sprint("P", o[1])},
		{"over: trash the extra once both ideal copies are there", on(s, old, o[0], o[1], o[4]), 2, nil, Over, fmt.Sprint("T", o[4])},
		{"over, but the extra is young", on(s, young, o[0], o[1], o[4]), 2, nil, Over, ""},
		{"over, misplaced: pull first, trash nothing", on(s, old, o[0], o[2], o[3]), 2, nil, Misplaced, fmt.Sprint("P", o[1])},
		{"unreferenced and old: all trashed", on(s, old, o[2], o[3]), 0, nil, Unreferenced, sorted(fmt.Sprint("T", o[2]), fmt.Sprint("T", o[3]))},
		{"unreferenced but one copy young: kept", append(on(s, old, o[2]), on(s, young, o[3])...), 0, nil, Unreferenced, ""},
		{"ideal server read-only: the next writable one is ideal", on(s, old, o[0], o[2]), 2,
			func(s []Server) []Server { s[o[1]].Mounts[0].AllowWrite = false; return s }, OK, ""},
		{"extra copy on a read-only mount is not trashed", on(s, old, o[0], o[1], o[4]), 2,
			func(s []Server) []Server { s[o[4]].Mounts[0].AllowTrash = false; return s }, Over, ""},
		{"a replication-2 mount counts twice", on(s, old, o[0]), 2,
			func(s []Server) []Server { s[o[0]].Mounts[0].Replication = 2; return s }, OK, ""},
		{"more wanted than servers: pull to all", on(s, old, o[0]), 7, nil, Under, sorted(fmt.Sprint("P", o[1]), fmt.Sprint("P", o[2]), fmt.Sprint("P", o[3]), fmt.Sprint("P", o[4]))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := cluster(5)
			if tt.servers != nil {
				servers = tt.servers(servers)
			}
			inv := testInv{Servers: servers, Copies: map[string][]Copy{}}
			if tt.copies != nil {
				inv.Copies[h] = tt.copies
			}
			want := Want{}
			if tt.wanted > 0 {
				want[h] = Wanted{Size: 3, Replicas: tt.wanted}
			}
			p := compute(t, inv, want)
			if got := p.Blocks[h].Class; got != tt.class {
				t.Errorf("class %v, want %v", got, tt.class)
			}
			if got := renderLists(servers, p); got != tt.lists {
				t.Errorf("lists %q, want %q", got, tt.lists)
			}
			if p.Summary[tt.class].Blocks != 1 || p.Summary[tt.class].Bytes != 3 {
				t.Errorf("summary %+v", p.Summary)
			}
			for url, items := range p.Pulls {
				for _, it := range items {
					if it.Locator != h+"+3" || len(it.Servers) == 0 || slices.Contains(it.Servers, url) {
						t.Errorf("pull to %s: %+v", url, it)
					}
				}
			}
			for _, items := range p.Trash {
				for _, it := range items {
					if it.Locator != h+"+3" || it.BlockMtime == 0 || it.MountUUID == "" {
						t.Errorf("trash item %+v", it)
					}
				}
			}
		})
	}
}

// With KeepUnreferenced, a block the live set wants no copy of (none
// references it, or those that do want 0) is counted as unreferenced
// and kept, however old; a referenced block's extra copy is still
// trimmed. Without it, the same garbage is trashed.
func TestComputeKeepUnreferenced(t *testing.T) {
	s := cluster(5)
	h, g := hashes[0], hashes[1] // h: referenced, wanted 2, one copy extra; g: garbage
	oh, og := order(s, h), order(s, g)
	trimH := fmt.Sprint("T", oh[4], ":", h[:4])
	trashG := sorted(trimH, fmt.Sprint("T", og[2], ":", g[:4]), fmt.Sprint("T", og[3], ":", g[:4]))
	tests := []struct {
		name     string
		keep     bool
		gWant    *Wanted // nil: no manifest references g
		gMtime   int64
		complete bool
		lists    string // trash, as "T<server>:<hash prefix>"
	}{
		{"kept: old garbage", true, nil, old, true, trimH},
		{"kept: a block wanted 0 times", true, &Wanted{Size: 3}, old, true, trimH},
		{"kept: young garbage", true, nil, young, true, trimH},
		{"kept, and no trash at all from an incomplete index", true, nil, old, false, ""},
		{"collected: old garbage", false, nil, old, true, trashG},
		{"collected: a block wanted 0 times", false, &Wanted{Size: 3}, old, true, trashG},
		{"not collected: young garbage", false, nil, young, true, trimH},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := cluster(5)
			servers[0].Complete = tt.complete
			inv := testInv{Servers: servers, Copies: map[string][]Copy{
				h: on(servers, old, oh[0], oh[1], oh[4]),
				g: on(servers, tt.gMtime, og[2], og[3]),
			}}
			want := Want{h: {Size: 3, Replicas: 2}}
			if tt.gWant != nil {
				want[g] = *tt.gWant
			}
			p, err := testCompute(t, inv, want, Options{Now: now, SigningTTL: ttl, KeepUnreferenced: tt.keep})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, srv := range servers {
				for _, it := range p.Trash[srv.Service.URL()] {
					got = append(got, fmt.Sprint("T", i, ":", it.Locator[:4]))
				}
				if n := len(p.Pulls[srv.Service.URL()]); n > 0 {
					t.Errorf("%d pulls to server %d", n, i)
				}
			}
			if l := sorted(got...); l != tt.lists {
				t.Errorf("trash %q, want %q", l, tt.lists)
			}
			if p.Blocks[g].Class != Unreferenced || p.Blocks[h].Class != Over {
				t.Errorf("classes: garbage %v, referenced %v", p.Blocks[g].Class, p.Blocks[h].Class)
			}
			if u := p.Summary[Unreferenced]; u.Blocks != 1 || u.Bytes != 3 {
				t.Errorf("unreferenced in the summary: %+v, want 1 block of 3 bytes", u)
			}
		})
	}
}

// compute runs Compute at now with the test TTL.
func compute(t *testing.T, inv testInv, want Want) *testPlan {
	t.Helper()
	p, err := testCompute(t, inv, want, Options{Now: now, SigningTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func sorted(s ...string) string {
	sort.Strings(s)
	return strings.Join(s, " ")
}

// With any index incomplete, no trash list is sent at all, not even an
// empty one; pulls still are.
func TestComputeIncompleteIndexSendsNoTrash(t *testing.T) {
	s := cluster(5)
	h := hashes[1]
	o := order(s, h)
	s[o[4]].Complete = false
	inv := testInv{Servers: s, Copies: map[string][]Copy{
		h:         on(s, old, o[0], o[1], o[2]),
		hashes[2]: on(s, old, 0),
	}}
	p := compute(t, inv, Want{h: {Size: 3, Replicas: 2}})
	if p.Trash != nil || !p.TrashWithheld {
		t.Errorf("trash %v with an incomplete index", p.Trash)
	}
	if p.Blocks[h].Class != Over || p.Blocks[hashes[2]].Class != Unreferenced {
		t.Errorf("classes %v", p.Blocks)
	}
}

// Whatever the copies, Compute never plans to trash a referenced block's
// last copy or go below its wanted count, never trashes a young copy, and
// pulls only to servers that lack the block.
func TestComputeSafety(t *testing.T) {
	s := cluster(4)
	h := hashes[2]
	mtimes := []int64{0, old, young} // 0: no copy
	var walk func(i int, copies []Copy)
	cases := 0
	walk = func(i int, copies []Copy) {
		if i == len(s) {
			for wanted := 0; wanted <= 3; wanted++ {
				cases++
				check(t, s, h, copies, wanted)
			}
			return
		}
		for _, m := range mtimes {
			c := copies
			if m != 0 {
				c = append(slices.Clip(copies), on(s, m, i)...)
			}
			walk(i+1, c)
		}
	}
	walk(0, nil)
	t.Logf("%d cases", cases)
}

func check(t *testing.T, s []Server, h string, copies []Copy, wanted int) {
	t.Helper()
	inv := testInv{Servers: s, Copies: map[string][]Copy{}}
	if len(copies) > 0 {
		inv.Copies[h] = copies
	}
	want := Want{}
	if wanted > 0 {
		want[h] = Wanted{Size: 3, Replicas: wanted}
	}
	p := compute(t, inv, want)
	holders := map[string]Copy{}
	for _, c := range copies {
		holders[s[c.Server].Service.URL()] = c
	}
	trashed := 0
	for url, items := range p.Trash {
		for _, it := range items {
			trashed++
			c, ok := holders[url]
			if !ok || c.Mtime != it.BlockMtime {
				t.Fatalf("%v want %d: trash on %s, which holds %+v", copies, wanted, url, c)
			}
			if c.Mtime > now.Add(-ttl).UnixNano() {
				t.Fatalf("%v want %d: trashes a young copy on %s", copies, wanted, url)
			}
		}
	}
	if wanted > 0 && len(copies)-trashed < min(wanted, len(copies)) {
		t.Fatalf("%v want %d: trashes %d of %d copies", copies, wanted, trashed, len(copies))
	}
	if wanted > 0 && trashed > 0 && len(p.Pulls) > 0 {
		for _, items := range p.Pulls {
			if len(items) > 0 {
				t.Fatalf("%v want %d: trashes while pulls are pending", copies, wanted)
			}
		}
	}
	for url, items := range p.Pulls {
		if _, has := holders[url]; has && len(items) > 0 {
			t.Fatalf("%v want %d: pulls to %s, which holds it", copies, wanted, url)
		}
	}
}
