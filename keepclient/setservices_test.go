package keepclient_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
)

// TestSetServices: after SetServices, writes go to the new list only, from
// the client and from the clients WithToken and WithHeader made from it
// before the change (a proxy makes one per request from one it holds).
func TestSetServices(t *testing.T) {
	c := keeptest.NewCluster(t, 3)
	all := c.Services()
	kc, err := keepclient.New(keepclient.Options{Services: all[:2], Token: "tok", Replicas: 2, RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	derived := kc.WithHeader("Via", "test").WithToken("other")

	put := func(kc *keepclient.Client, text string) []string {
		t.Helper()
		data := []byte(text)
		sum := md5.Sum(data)
		if _, err := kc.Put(context.Background(), data, keepclient.PutOptions{}); err != nil {
			t.Fatalf("put %q: %v", text, err)
		}
		var uuids []string
		for _, s := range c.Holders(hex.EncodeToString(sum[:])) {
			uuids = append(uuids, s.Service().UUID)
		}
		return uuids
	}
	if got := put(kc, "before"); !slices.Equal(got, []string{all[0].UUID, all[1].UUID}) {
		t.Fatalf("before SetServices the block is on %v", got)
	}
	kc.SetServices(all[1:])
	want := []string{all[1].UUID, all[2].UUID}
	for i, k := range []*keepclient.Client{kc, derived} {
		if got := put(k, fmt.Sprint("after ", i)); !slices.Equal(got, want) {
			t.Errorf("client %d: after SetServices the block is on %v, want %v", i, got, want)
		}
		if got := k.Services(); !slices.Equal(got, all[1:]) {
			t.Errorf("client %d: Services() = %v", i, got)
		}
	}
}
