package balance

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keepproject/keep/keepclient"
)

// vol describes one volume of a test cluster: its uuid, the servers that
// list it, and its replication (0 means 1).
type vol struct {
	uuid    string
	servers []int
	repl    int
}

// build returns n servers listing the given volumes, writable and
// trashable, with device ids equal to the uuids.
func build(n int, vols ...vol) []Server {
	out := make([]Server, n)
	for i := range out {
		out[i] = Server{
			Service:  keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", i), Host: "h", Port: 1000 + i, Type: keepclient.TypeDisk},
			Complete: true,
		}
	}
	for _, v := range vols {
		for _, i := range v.servers {
			out[i].Mounts = append(out[i].Mounts, Mount{UUID: v.uuid, DeviceID: "dev-" + v.uuid, AllowWrite: true, AllowTrash: true, Replication: max(v.repl, 1)})
		}
	}
	return out
}

// at returns a copy on volume uuid as server's index lists it.
func at(uuid string, server int, mtime int64) Copy {
	return Copy{Server: server, Mount: uuid, Size: 3, Mtime: mtime}
}

// A volume several servers list is one volume: its copy counts once, it
// is trashed at most once, and no pull asks for a second copy on it.
func TestComputeSharedVolumes(t *testing.T) {
	h := hashes[0]
	o := order(cluster(4), h) // build names servers as cluster does: same probe order
	// X is shared by the first two servers in probe order; the others
	// have a volume each.
	shared := func(mod ...func([]Server)) []Server {
		s := build(4, vol{uuid: "X", servers: []int{o[0], o[1]}}, vol{uuid: "C", servers: []int{o[2]}}, vol{uuid: "D", servers: []int{o[3]}})
		for _, m := range mod {
			m(s)
		}
		return s
	}
	tests := []struct {
		name    string
		servers []Server
		copies  []Copy
		wanted  int
		class   Class
		replica int
		lists   string
		check   func(t *testing.T, s []Server, p *testPlan)
	}{
		{"one copy, two servers: counts once, not trashed", shared(), []Copy{at("X", o[0], old)}, 1, OK, 1, "", nil},
		{"listed by both servers' indexes: still once", shared(), []Copy{at("X", o[0], old), at("X", o[1], old)}, 1, OK, 1, "", nil},
		{"wanted 2: pulled past the second server of the volume", shared(), []Copy{at("X", o[0], old)}, 2, Under, 1, fmt.Sprint("P", o[2]), nil},
		{"garbage: trashed once, through the first server listing it", shared(), []Copy{at("X", o[0], old), at("X", o[1], old)}, 0, Unreferenced, 1, fmt.Sprint("T", min(o[0], o[1])), nil},
		{"an extra copy elsewhere is trashed, the shared one kept", shared(), []Copy{at("X", o[0], old), at("D", o[3], old+1)}, 1, Over, 2, fmt.Sprint("T", o[3]), nil},
		{"wanted 2 with the shared copy and one elsewhere: a pull, no trash", shared(), []Copy{at("X", o[1], old), at("D", o[3], old+1)}, 2, Misplaced, 2, fmt.Sprint("P", o[2]), nil},
		{"the least replication any server reports counts", shared(func(s []Server) { s[o[0]].Mounts[0].Replication = 2 }),
			[]Copy{at("X", o[0], old)}, 2, Under, 1, fmt.Sprint("P", o[2]), nil},
		{"replication 2 on both: enough", shared(func(s []Server) { s[o[0]].Mounts[0].Replication = 2; s[o[1]].Mounts[0].Replication = 2 }),
			[]Copy{at("X", o[0], old), at("D", o[3], old+1)}, 2, Over, 3, fmt.Sprint("T", o[3]), nil},
		{"a server with the shared volume and one of its own: the pull names its own",
			build(4, vol{uuid: "X", servers: []int{o[0], o[1]}}, vol{uuid: "Y", servers: []int{o[1]}}, vol{uuid: "C", servers: []int{o[2]}}),
			[]Copy{at("X", o[0], old)}, 2, Under, 1, fmt.Sprint("P", o[1]),
			func(t *testing.T, s []Server, p *testPlan) {
				it := p.Pulls[s[o[1]].Service.URL()][0]
				if it.MountUUID != "Y" || len(it.Servers) != 1 || it.Servers[0] != s[o[0]].Service.URL() {
					t.Errorf("pull %+v, want to mount Y from %s", it, s[o[0]].Service.URL())
				}
			}},
		{"read-only through one server, trashed through the other",
			shared(func(s []Server) { s[o[0]].Mounts[0].AllowWrite, s[o[0]].Mounts[0].AllowTrash = false, false }),
			[]Copy{at("X", o[0], old)}, 0, Unreferenced, 1, fmt.Sprint("T", o[1]),
			func(t *testing.T, s []Server, p *testPlan) {
				if it := p.Trash[s[o[1]].Service.URL()][0]; it.MountUUID != "X" || it.BlockMtime != old {
					t.Errorf("trash %+v", it)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := testInv{Servers: tt.servers, Copies: map[string][]Copy{h: tt.copies}}
			want := Want{}
			if tt.wanted > 0 {
				want[h] = Wanted{Size: 3, Replicas: tt.wanted}
			}
			p := compute(t, inv, want)
			if got := p.Blocks[h]; got.Class != tt.class || got.Replicas != tt.replica {
				t.Errorf("state %v with %d replicas, want %v with %d", got.Class, got.Replicas, tt.class, tt.replica)
			}
			if got := renderLists(tt.servers, p); got != tt.lists {
				t.Errorf("lists %q, want %q", got, tt.lists)
			}
			if tt.check != nil {
				tt.check(t, tt.servers, p)
			}
		})
	}
}

// Copies on different volumes with identical mtimes may be one file seen
// twice: none is trashed while another is kept, and only one is trashed
// in a run.
func TestComputeSameMtime(t *testing.T) {
	h := hashes[1]
	s := cluster(4)
	o := order(s, h)
	same := func(at ...int) []Copy {
		var out []Copy
		for _, i := range at {
			out = append(out, Copy{Server: i, Mount: s[i].Mounts[0].UUID, Size: 3, Mtime: old})
		}
		return out
	}
	tests := []struct {
		name   string
		copies []Copy
		wanted int
		lists  string
	}{
		{"an extra copy with a kept copy's mtime stays", same(o[0], o[3]), 1, ""},
		{"two extra copies with one mtime, a kept one with another", append(on(s, old, o[0]), same(o[2], o[3])...), 1, fmt.Sprint("T", o[2])},
		{"garbage with one mtime: one trashed per run", same(o[1], o[2], o[3]), 0, fmt.Sprint("T", o[1])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Want{}
			if tt.wanted > 0 {
				want[h] = Wanted{Size: 3, Replicas: tt.wanted}
			}
			p := compute(t, testInv{Servers: s, Copies: map[string][]Copy{h: tt.copies}}, want)
			if got := renderLists(s, p); got != tt.lists {
				t.Errorf("lists %q, want %q", got, tt.lists)
			}
		})
	}
}

// One device listed under two volume uuids is a configuration error;
// one uuid on several servers is not.
func TestComputeDeviceConflict(t *testing.T) {
	s := build(3, vol{uuid: "X", servers: []int{0, 1}}, vol{uuid: "Y", servers: []int{2}})
	if _, err := testCompute(t, testInv{Servers: s}, nil, Options{Now: now, SigningTTL: ttl}); err != nil {
		t.Fatalf("one uuid on two servers: %v", err)
	}
	s[2].Mounts[0].DeviceID = s[0].Mounts[0].DeviceID
	_, err := testCompute(t, testInv{Servers: s, Copies: map[string][]Copy{hashes[0]: {at("X", 0, old)}}}, nil, Options{Now: now, SigningTTL: ttl})
	var dc *DeviceConflictError
	if !errors.As(err, &dc) || dc.DeviceID != "dev-X" {
		t.Fatalf("error %v, want a device conflict on dev-X", err)
	}
	for _, want := range []string{"dev-X", "X on " + s[0].Service.String(), "Y on " + s[2].Service.String(), "configuration error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
