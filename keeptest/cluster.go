package keeptest

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// defaultSigningTTL is used when a Signer is given without a TTL: the
// Arvados default of two weeks.
const defaultSigningTTL = 336 * time.Hour

// Cluster is a set of in-process block servers. Its methods are safe for
// concurrent use.
type Cluster struct {
	servers []*Server
	seq     atomic.Int64  // last Request.Seq handed out
	done    chan struct{} // closed by Close; ends delays and stalls
	once    sync.Once     // guards Close
	discard atomic.Bool   // PUTs keep only the hash

	mu       sync.Mutex     // protects the fields below
	changed  chan struct{}  // closed and replaced whenever server state changes
	signer   locator.Signer // signs PUT results when Key is set
	checkSig bool           // GET and HEAD require a valid signature
}

// NewCluster starts n block servers and closes them when the test ends.
// Server i has UUID fmt.Sprintf("zzzzz-bi6l4-%015d", i) and type "disk".
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := Start(n)
	t.Cleanup(c.Close)
	return c
}

// Start starts n block servers like NewCluster, for use outside tests;
// the caller must call Close. It panics if a server cannot listen.
func Start(n int) *Cluster {
	c := &Cluster{done: make(chan struct{}), changed: make(chan struct{})}
	for i := 0; i < n; i++ {
		s := newServer(c, fmt.Sprintf("zzzzz-bi6l4-%015d", i))
		c.servers = append(c.servers, s)
	}
	return c
}

// Discard makes every server verify and acknowledge uploads but keep only
// the hash, not the data, so benchmarks can write many large blocks
// without filling memory. Has and Holders still report such blocks,
// HEAD answers their size, GET a 500, and Block returns them as empty.
func (c *Cluster) Discard(on bool) { c.discard.Store(on) }

// Servers returns the servers in creation order.
func (c *Cluster) Servers() []*Server {
	return append([]*Server(nil), c.servers...)
}

// Server returns server i, counting from 0 in creation order.
func (c *Cluster) Server(i int) *Server { return c.servers[i] }

// Services returns the current keepclient.Service of each server, in
// creation order; it reflects SetType and SetReadOnly.
func (c *Cluster) Services() []keepclient.Service {
	out := make([]keepclient.Service, len(c.servers))
	for i, s := range c.servers {
		out[i] = s.Service()
	}
	return out
}

// ProbeOrder returns the servers in rendezvous order for the block with the
// given hash (32 hex digits; any +hints are ignored), as keepclient.ProbeOrder
// orders their services.
func (c *Cluster) ProbeOrder(hash string) []*Server {
	if len(hash) > 32 {
		hash = hash[:32]
	}
	byUUID := make(map[string]*Server, len(c.servers))
	for _, s := range c.servers {
		byUUID[s.uuid] = s
	}
	var out []*Server
	for _, svc := range keepclient.ProbeOrder(hash, c.Services()) {
		out = append(out, byUUID[svc.UUID])
	}
	return out
}

// Requests returns every request received by any server, in arrival order.
func (c *Cluster) Requests() []Request {
	var all []Request
	for _, s := range c.servers {
		all = append(all, s.Requests()...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	return all
}

// PutRequests returns every PUT received by any server, in arrival order.
func (c *Cluster) PutRequests() []Request {
	var puts []Request
	for _, r := range c.Requests() {
		if r.Method == "PUT" {
			puts = append(puts, r)
		}
	}
	return puts
}

// Holders returns the servers that store the block with the given hash
// (32 hex digits; any +hints are ignored), in creation order.
func (c *Cluster) Holders(hash string) []*Server {
	var out []*Server
	for _, s := range c.servers {
		if s.Has(hash) {
			out = append(out, s)
		}
	}
	return out
}

// SetSigner makes servers sign the locators they return for a PUT, for the
// bearer token the PUT carried, like a keepstore with a blob signing key.
// A zero TTL means two weeks. A zero Signer turns signing off.
func (c *Cluster) SetSigner(s locator.Signer) {
	if s.TTL == 0 {
		s.TTL = defaultSigningTTL
	}
	c.mu.Lock()
	c.signer = s
	c.mu.Unlock()
}

// RequireSignatures makes GET and HEAD check the locator's permission
// signature against the cluster's Signer, like keepstore with BlobSigning
// on: no token gives 401, an expired signature 401, a missing or invalid
// one 400.
func (c *Cluster) RequireSignatures(on bool) {
	c.mu.Lock()
	c.checkSig = on
	c.mu.Unlock()
}

// Sign returns loc signed for token with the cluster's Signer, as a PUT to
// one of its servers would return it. Without a Signer, loc is returned
// unchanged. It panics if loc is not a valid locator.
func (c *Cluster) Sign(loc, token string) string {
	l, err := locator.Parse(loc)
	if err != nil {
		panic(fmt.Sprintf("keeptest: Sign: %v", err))
	}
	s, _ := c.signing()
	return s.Sign(l, token, time.Now().Add(s.TTL)).String()
}

func (c *Cluster) signing() (locator.Signer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signer, c.checkSig
}

// WaitRequests blocks until the cluster has received at least n requests
// in all, or ctx ends.
func (c *Cluster) WaitRequests(ctx context.Context, n int) error {
	return c.wait(ctx, func() bool { return int(c.seq.Load()) >= n })
}

// WaitIdle blocks until no server is handling a request, or ctx ends.
// Requests stalled or delayed are still being handled.
func (c *Cluster) WaitIdle(ctx context.Context) error {
	return c.wait(ctx, func() bool {
		for _, s := range c.servers {
			if s.InFlight() > 0 {
				return false
			}
		}
		return true
	})
}

// wait blocks until cond is true or ctx ends. cond is evaluated after
// taking the current change channel, so no change can be missed.
func (c *Cluster) wait(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notify wakes every wait. The caller must not hold a server's mu.
func (c *Cluster) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Close stops all servers. It first ends every delay and stall, then
// closes all connections and waits for the handlers to return. It is
// idempotent and is called at the end of the test by NewCluster.
func (c *Cluster) Close() {
	c.once.Do(func() {
		close(c.done)
		for _, s := range c.servers {
			s.ts.CloseClientConnections()
		}
		for _, s := range c.servers {
			s.ts.Close()
			s.mu.Lock()
			if s.release != nil {
				s.release()
			}
			s.mu.Unlock()
		}
	})
}

// newTestServer starts an httptest server for h that remembers each
// connection in its requests' contexts, so handlers can watch the peer.
func newTestServer(h *Server) *httptest.Server {
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnContext = withConn
	ts.Start()
	return ts
}
