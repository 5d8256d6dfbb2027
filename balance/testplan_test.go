package balance

import (
	"slices"
	"testing"
)

// testInv is an inventory as a test writes it: the copies of each block
// by hash.
type testInv struct {
	Servers []Server
	Copies  map[string][]Copy
}

// Want is a live set as a test writes it, by hash.
type Want map[string]Wanted

// Wanted is what the live set asks of one block.
type Wanted struct {
	Size     int64
	Replicas int
}

// newTestInventory makes the Inventory of ti and want.
func newTestInventory(t testing.TB, ti testInv, want Want) *Inventory {
	t.Helper()
	inv := NewInventory()
	inv.Servers = ti.Servers
	for h, w := range want {
		if err := inv.Want(h, w.Size, w.Replicas); err != nil {
			t.Fatal(err)
		}
	}
	for h, cs := range ti.Copies {
		for _, c := range cs {
			if err := inv.AddCopy(h, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	return inv
}

// testPlan is a plan with its lists and block states as maps, for tests
// to read: Trash is nil when the plan withholds trash.
type testPlan struct {
	*Plan
	Pulls  map[string][]PullItem
	Trash  map[string][]TrashItem
	Blocks map[string]BlockState
}

// testCompute runs Compute on the inventory of ti and want.
func testCompute(t testing.TB, ti testInv, want Want, opts Options) (*testPlan, error) {
	t.Helper()
	p, err := Compute(newTestInventory(t, ti, want), opts)
	if err != nil {
		return nil, err
	}
	return expand(p), nil
}

// expand returns p's lists and states as maps.
func expand(p *Plan) *testPlan {
	tp := &testPlan{Plan: p, Pulls: map[string][]PullItem{}, Blocks: map[string]BlockState{}}
	if !p.TrashWithheld {
		tp.Trash = map[string][]TrashItem{}
	}
	for i, s := range p.inv.Servers {
		if !p.HasLists(i) {
			continue
		}
		tp.Pulls[s.Service.URL()] = append([]PullItem{}, slices.Collect(p.Pulls(i))...)
		if tp.Trash != nil {
			tp.Trash[s.Service.URL()] = append([]TrashItem{}, slices.Collect(p.Trash(i))...)
		}
	}
	for b := range p.Blocks() {
		tp.Blocks[b.Hash] = b.BlockState
	}
	return tp
}
