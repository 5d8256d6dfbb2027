package keepclient

import (
	"sync"

	"github.com/keepproject/keep/internal/protocol"
)

// maxYields bounds the services a yieldList remembers; past it, it
// starts again from nothing (a client uses a handful of services, even
// over many refreshes).
const maxYields = 4096

// yieldList remembers, per service, the replicas its last successful
// upload counted for in a write that had counted none of its volumes
// (outcome.worth): more than one for a volume with Replication 2, for
// example. A write asks such a service for that many (writePlan.next), so
// that it fills that many of the N places and no upload starts for them
// elsewhere: a peer failing while its answer is awaited then starts no
// needless upload.
type yieldList struct {
	mu   sync.Mutex     // guards last
	last map[string]int // by service URL
}

func newYieldList() *yieldList { return &yieldList{last: make(map[string]int)} }

// note records that the service at url just counted for n replicas.
func (y *yieldList) note(url string, n int) {
	n = min(max(n, 0), protocol.MaxReplicas)
	y.mu.Lock()
	defer y.mu.Unlock()
	if _, known := y.last[url]; !known && len(y.last) >= maxYields {
		clear(y.last)
	}
	y.last[url] = n
}

// expect returns what the service at url counted for in its last
// successful upload, or 0 when no upload to it has succeeded.
func (y *yieldList) expect(url string) int {
	y.mu.Lock()
	defer y.mu.Unlock()
	return y.last[url]
}
