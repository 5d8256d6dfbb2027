package keepclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
)

// What a write counts, against servers that store more than one replica
// per upload, share volumes, or say odd things about either.
func TestPutCountsWhatServersStore(t *testing.T) {
	volumes := func(v string) keeptest.Response {
		return keeptest.Response{Header: http.Header{"X-Keep-Volumes-Stored": {v}}}
	}
	tests := []struct {
		name    string
		servers int
		setup   func(order []*keeptest.Server)
		wanted  int
		stored  int    // replicas the write counts
		puts    string // uploads the write started to each server, in probe order
		counted string // what the uploads counted for, sorted (which of two sharing a volume answers first is not fixed)
		warns   string // in the log, "" for none
		hold    bool   // the second server in probe order answers only after the write
	}{
		{"one server storing two, unnamed", 1, func(o []*keeptest.Server) { o[0].SetReplicas(2) }, 2, 2, "[1]", "[2]", "", false},
		{"one server storing two, named", 1, func(o []*keeptest.Server) { o[0].SetReplicas(2); o[0].SetVolume("v") }, 2, 2, "[1]", "[2]", "", false},
		{"one server storing three", 1, func(o []*keeptest.Server) { o[0].SetReplicas(3) }, 2, 2, "[1]", "[2]", "", false},
		{"two servers sharing a volume", 2, func(o []*keeptest.Server) { o[0].SetVolume("shared"); o[1].SetVolume("shared") }, 2, 1, "[1 1]", "[0 1]", "", false},
		{"two sharing, then the next", 3, func(o []*keeptest.Server) {
			o[0].SetVolume("shared")
			o[1].SetVolume("shared")
			o[2].SetVolume("own")
		}, 2, 2, "[1 1 1]", "[0 1 1]", "", false},
		{"malformed volumes count as none", 2, func(o []*keeptest.Server) {
			o[0].Script(volumes("shared"))
			o[1].Script(volumes("shared"))
		}, 2, 2, "[1 1]", "[1 1]", "as if it named no volumes", false},
		{"a volume named twice is one", 3, func(o []*keeptest.Server) {
			o[0].SetReplicas(2)
			o[0].Script(volumes("v=1, v=1"))
		}, 3, 3, "[1 1 1]", "[1 1 1]", "", false},
		{"huge counts are bounded", 2, func(o []*keeptest.Server) {
			o[0].SetReplicas(65536)
			o[0].Script(volumes("v=65536, w=65536"))
		}, 2, 2, "[1 1]", "[0 2]", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := keeptest.NewCluster(t, tt.servers)
			data, hash := block("counted: " + tt.name)
			order := c.ProbeOrder(hash)
			tt.setup(order)
			if tt.hold {
				hold := make(chan struct{})
				order[1].Script(keeptest.Response{Hold: hold})
				defer close(hold)
			}
			var logs bytes.Buffer
			kc := newClient(t, c, func(o *keepclient.Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: tt.wanted})
			var ire *keepclient.InsufficientReplicasError
			switch {
			case tt.stored == tt.wanted && err != nil:
				t.Fatalf("Put: %v", err)
			case tt.stored < tt.wanted && (!errors.As(err, &ire) || ire.Stored != tt.stored):
				t.Fatalf("Put: %v, want an InsufficientReplicasError with %d stored", err, tt.stored)
			}
			var puts, counted []int
			for _, s := range order {
				uploads, n := 0, 0
				for _, a := range res.Attempts {
					if a.Service.UUID == s.UUID() {
						uploads++
						n += a.Replicas
					}
				}
				puts, counted = append(puts, uploads), append(counted, n)
			}
			slices.Sort(counted)
			if res.Replicas != tt.stored || fmt.Sprint(puts) != tt.puts || fmt.Sprint(counted) != tt.counted {
				t.Errorf("stored %d, PUTs %v, counted %v; want %d, %s, %s (attempts %+v)", res.Replicas, puts, counted, tt.stored, tt.puts, tt.counted, res.Attempts)
			}
			if tt.warns == "" && logs.Len() > 0 || !strings.Contains(logs.String(), tt.warns) {
				t.Errorf("log %q, want %q", logs.String(), tt.warns)
			}
		})
	}
}

// A server storing two replicas with a failing peer, N=2. Answer first:
// the peer's upload is not needed and no third starts. Failure first: a
// client that has not yet written to the server cannot know it stores
// two, so the next service starts; but once it knows, it asks that
// server for both replicas and writes to no other, whichever would have
// answered first. Answers are ordered with holds, not timing.
func TestPutTwoReplicaServerWithFailingPeer(t *testing.T) {
	for _, answerFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("answer first ", answerFirst), func(t *testing.T) {
			c := keeptest.NewCluster(t, 3)
			data, hash := block(fmt.Sprint("two and a failing peer ", answerFirst))
			order := c.ProbeOrder(hash)
			two, peer, next := order[0], order[1], order[2]
			two.SetReplicas(2)
			kc := newClient(t, c, func(o *keepclient.Options) { o.LagMin = time.Hour })
			ctx := waitCtx(t)

			// The first write: the client does not know what two stores.
			hold := make(chan struct{})
			if answerFirst {
				peer.Script(keeptest.Response{Hold: hold, Status: 500})
			} else {
				two.Script(keeptest.Response{Hold: hold})
				peer.Script(keeptest.Response{Status: 500})
			}
			done := make(chan error, 1)
			var res *keepclient.PutResult
			go func() {
				var err error
				res, err = kc.Put(ctx, data, keepclient.PutOptions{Replicas: 2})
				done <- err
			}()
			if answerFirst {
				// The write ends on two's answer, and stops the
				// upload to the peer, still held.
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				close(hold)
				if n := next.PutCount(); n != 0 {
					t.Errorf("a third upload started (%d PUTs to the next server)", n)
				}
				if a := attemptTo(res, peer); a == nil || !strings.Contains(a.Message, "not needed") {
					t.Errorf("upload to the failing peer: %+v, want it stopped as not needed", a)
				}
			} else {
				// The peer's failure starts the next service (the
				// third request); only then does two answer.
				if err := c.WaitRequests(ctx, 3); err != nil {
					t.Fatal(err)
				}
				close(hold)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if n := next.PutCount(); n != 1 {
					t.Errorf("next server got %d PUTs, want the 1 the failure started", n)
				}
			}
			if res.Replicas != 2 {
				t.Errorf("replicas %d", res.Replicas)
			}

			// The second write, of another block in whose probe order
			// two and peer come first too: the client knows two stores
			// two. The peer would fail, and answer first; it is never
			// asked.
			before := len(c.PutRequests())
			hold = make(chan struct{})
			two.Script(keeptest.Response{Hold: hold})
			peer.Script(keeptest.Response{Status: 500})
			data2 := blockFirst(c, "two and a failing peer, again", two, peer)
			go func() {
				var err error
				res, err = kc.Put(ctx, data2, keepclient.PutOptions{Replicas: 2})
				done <- err
			}()
			if err := two.WaitHeld(ctx, 1); err != nil {
				t.Fatal(err)
			}
			close(hold)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			var targets []string
			for _, r := range c.PutRequests()[before:] {
				targets = append(targets, r.Server)
			}
			if fmt.Sprint(targets) != fmt.Sprint([]string{two.UUID()}) || res.Replicas != 2 {
				t.Errorf("second write PUT to %v, stored %d; want only %s, 2", targets, res.Replicas, two.UUID())
			}
		})
	}
}

// blockFirst returns a block whose probe order starts with the servers
// given, in that order.
func blockFirst(c *keeptest.Cluster, prefix string, first ...*keeptest.Server) []byte {
	for i := 0; ; i++ {
		data, hash := block(fmt.Sprint(prefix, " ", i))
		if slices.Equal(c.ProbeOrder(hash)[:len(first)], first) {
			return data
		}
	}
}

// A service known to store two replicas that then fails: the write goes
// on to the next two services in probe order.
func TestPutKnownServiceFails(t *testing.T) {
	c := keeptest.NewCluster(t, 4)
	data, hash := block("known and failing")
	order := c.ProbeOrder(hash)
	order[0].SetReplicas(2)
	kc := newClient(t, c)
	if _, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	order[0].Script(keeptest.Response{Status: 500})
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil || res.Replicas != 2 {
		t.Fatalf("Put: %v, %d replicas", err, res.Replicas)
	}
	var puts []int
	for _, s := range order {
		puts = append(puts, s.PutCount())
	}
	if fmt.Sprint(puts) != "[2 1 1 0]" {
		t.Errorf("PUTs %v, want [2 1 1 0]: one to learn, one failing, then the next two", puts)
	}
}

func attemptTo(res *keepclient.PutResult, s *keeptest.Server) *keepclient.Attempt {
	for i, a := range res.Attempts {
		if a.Service.UUID == s.UUID() {
			return &res.Attempts[i]
		}
	}
	return nil
}

// waitCtx bounds a test's waits for events, so that a broken test fails
// rather than hangs.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
