package keepstore

import (
	"reflect"
	"testing"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// A received list gives its workers the items as they were sent: the
// locator text (hints, no size), the mount, the servers in order.
func TestCompactQueues(t *testing.T) {
	const h = "acbd18db4cc2f85cedef654fccc4a4d8"
	pulls := []protocol.PullItem{
		{Locator: h + "+3", Servers: []string{"http://a:1", "http://b:2"}, MountUUID: "m1"},
		{Locator: h + "+0", Servers: []string{"http://b:2", "http://a:1"}, MountUUID: ""},
		{Locator: h + "+67108864+Afff@12345678+K@zzzzz", Servers: []string{"http://a:1", "http://b:2"}, MountUUID: "m2"},
		{Locator: "00000000000000000000000000000000+1", Servers: []string{"https://c"}, MountUUID: "m1"},
	}
	trashes := []protocol.TrashItem{
		{Locator: h, BlockMtime: -5, MountUUID: "m1"},
		{Locator: h + "+3+Kzzzzz", BlockMtime: 1 << 62},
		{Locator: h + "+3", BlockMtime: 7, MountUUID: "m1"},
	}
	pq := &pullQueue{}
	for _, it := range pulls {
		l, err := checkPullItem(it)
		if err != nil {
			t.Fatal(err)
		}
		pq.add(it, l)
	}
	tq := &trashQueue{}
	for _, it := range trashes {
		tq.add(it, mustParse(t, it.Locator))
	}
	pl, tl := newWorkList(func(protocol.PullItem) (string, string) { return "", "" }), newWorkList(func(protocol.TrashItem) (string, string) { return "", "" })
	pl.replaceQueue(pq.done())
	tl.replaceQueue(tq.done())
	if len(pq.servers) != 3 || len(pq.mounts) != 3 || len(tq.mounts) != 2 {
		t.Errorf("tables: %d server lists, %d and %d mounts", len(pq.servers), len(pq.mounts), len(tq.mounts))
	}
	if r := pl.current(); r.Items != len(pulls) || r.Queued != len(pulls) {
		t.Errorf("pull report %+v", r)
	}
	var gotP []protocol.PullItem
	for range pulls {
		it, tk, _ := pl.next()
		pl.finish(it, tk, done, nil)
		gotP = append(gotP, it)
	}
	var gotT []protocol.TrashItem
	for range trashes {
		it, tk, _ := tl.next()
		tl.finish(it, tk, done, nil)
		gotT = append(gotT, it)
	}
	if !reflect.DeepEqual(gotP, pulls) {
		t.Errorf("pulls\n%+v, want\n%+v", gotP, pulls)
	}
	if !reflect.DeepEqual(gotT, trashes) {
		t.Errorf("trash\n%+v, want\n%+v", gotT, trashes)
	}
	if st := pl.status(); st.Queued != 0 || st.Done != int64(len(pulls)) {
		t.Errorf("pull status %+v", st)
	}
	pl.close()
	tl.close()
}

func mustParse(t *testing.T, s string) locator.Locator {
	t.Helper()
	l, err := locator.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
