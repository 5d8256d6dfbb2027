package localcluster_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/localcluster"
	"github.com/keepproject/keep/locator"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCluster(t *testing.T) {
	c, err := localcluster.Start(context.Background(), localcluster.Config{Dir: t.TempDir(), Servers: 3, Proxy: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Services()) != 3 || len(c.ProxyServices()) != 1 || c.ProxyServices()[0].IsDisk() {
		t.Fatalf("services %+v, proxy %+v", c.Services(), c.ProxyServices())
	}
	kc, err := keepclient.New(keepclient.Options{Services: c.Services(), Token: "t", RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	data := []byte("local cluster")
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil || len(c.Holders(res.Locator.Hash)) != 2 {
		t.Fatalf("Put: %v, holders %d", err, len(c.Holders(locator.New(data).Hash)))
	}

	// A full node refuses writes with 507; a stopped one refuses connections.
	order := keepclient.ProbeOrder(locator.New([]byte("faults")).Hash, c.Services())
	var nodes []*localcluster.Node
	for _, s := range order {
		for _, n := range c.Servers {
			if n.Service.UUID == s.UUID {
				nodes = append(nodes, n)
			}
		}
	}
	nodes[0].SetFull(true)
	nodes[1].Stop()
	keeptest.HoldPort(t, nodes[1].Service.Port)
	res, err = kc.Put(context.Background(), []byte("faults"), keepclient.PutOptions{Replicas: 2})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) || res.Replicas != 1 {
		t.Fatalf("Put with one full and one stopped node: %v", err)
	}
	for _, s := range ire.Services {
		switch s.Service.UUID {
		case nodes[0].Service.UUID:
			if s.Status != 507 {
				t.Errorf("full node answered %d", s.Status)
			}
		case nodes[1].Service.UUID:
			if s.Status != 0 {
				t.Errorf("stopped node answered %d", s.Status)
			}
		}
	}

	// The proxy writes behind itself.
	pc, _ := keepclient.New(keepclient.Options{Services: c.ProxyServices(), Token: "t", RetryDelay: time.Millisecond})
	defer pc.Close()
	nodes[0].SetFull(false)
	res, err = pc.Put(context.Background(), []byte("via proxy"), keepclient.PutOptions{Replicas: 2})
	if err != nil || res.Replicas != 2 || len(c.Holders(res.Locator.Hash)) != 2 {
		t.Fatalf("Put via proxy: %v", err)
	}
	got, err := pc.Get(context.Background(), res.Locator, nil)
	if err != nil || !bytes.Equal(got, []byte("via proxy")) {
		t.Fatalf("Get via proxy: %v", err)
	}
}

// Two clusters never share a directory; the lock goes with Close.
func TestClusterLocksDir(t *testing.T) {
	dir := t.TempDir()
	a, err := localcluster.Start(context.Background(), localcluster.Config{Dir: dir, Servers: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = localcluster.Start(context.Background(), localcluster.Config{Dir: dir, Servers: 1})
	if !errors.Is(err, localcluster.ErrInUse) || !strings.Contains(err.Error(), "in use by process") {
		t.Fatalf("second cluster on one directory: %v", err)
	}
	a.Close()
	b, err := localcluster.Start(context.Background(), localcluster.Config{Dir: dir, Servers: 1})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	b.Close()
}
