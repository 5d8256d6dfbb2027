package reliability

import (
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
)

// killEvent is one SIGKILL the controller sent, at some instant between
// from and at.
type killEvent struct {
	server int
	from   time.Time // before the signal was sent
	at     time.Time // once the process was gone
}

// controller kills a random server of a cluster with SIGKILL every
// minGap to maxGap and starts it again on the same port and volume. At
// its fillAt'th kill it restarts the server full (--capacity 1K), and
// the next kill of that server restarts it with room again.
type controller struct {
	t      *testing.T
	c      *cluster
	rng    *rand.Rand // used by the controller goroutine only
	minGap time.Duration
	maxGap time.Duration
	fillAt int

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	mu     sync.Mutex // protects the fields below
	kills  []killEvent
	lost   map[int]bool // servers given up: their port was taken
	filled int          // server restarted full, or -1
	fills  int
	cut    int // temporary files kills left: uploads cut mid-body
}

// startController starts a controller on c; it is stopped at cleanup,
// before the cluster's processes are killed.
func startController(t *testing.T, c *cluster, seed uint64, minGap, maxGap time.Duration, fillAt int) *controller {
	ctl := &controller{
		t: t, c: c, rng: rand.New(rand.NewPCG(seed, 2)),
		minGap: minGap, maxGap: maxGap, fillAt: fillAt,
		stop: make(chan struct{}), done: make(chan struct{}),
		lost: map[int]bool{}, filled: -1,
	}
	go ctl.run()
	t.Cleanup(ctl.halt)
	return ctl
}

// halt stops the controller and waits for it; every server it did not
// give up is running afterwards.
func (ctl *controller) halt() {
	ctl.stopOnce.Do(func() { close(ctl.stop) })
	<-ctl.done
}

func (ctl *controller) run() {
	defer close(ctl.done)
	for n := 1; ctl.pause(ctl.minGap, ctl.maxGap); n++ {
		s := ctl.pick()
		if s == nil {
			return
		}
		// The kill is made and recorded with ctl.mu held, so that
		// killsBetween, called once a put has ended, sees every kill
		// begun before then, however late this goroutine runs.
		ctl.mu.Lock()
		from := time.Now()
		s.kill()
		ctl.kills = append(ctl.kills, killEvent{server: s.index, from: from, at: time.Now()})
		ctl.mu.Unlock()
		cut := ctl.removeTemps(s)
		ctl.mu.Lock()
		ctl.cut += cut
		switch {
		case n == ctl.fillAt:
			s.setExtra("--capacity", "1K")
			ctl.filled = s.index
			ctl.fills++
		case s.index == ctl.filled:
			s.setExtra()
			ctl.filled = -1
		}
		ctl.mu.Unlock()
		// Down for a moment, so that clients also meet refused
		// connections, not only cut ones.
		ctl.pause(0, 300*time.Millisecond)
		if err := s.start(ctl.c.env, true); err != nil {
			if !isAddrInUse(err) {
				ctl.t.Errorf("restarting server %d: %v", s.index, err)
				return
			}
			ctl.t.Logf("server %d not restarted, its port was taken meanwhile: %v", s.index, err)
			ctl.mu.Lock()
			ctl.lost[s.index] = true
			ctl.mu.Unlock()
		}
	}
}

// removeTemps deletes the temporary files in a killed server's volume
// and returns how many there were: each is an upload the kill cut short.
// (The restarted server would remove them too; counting them here is
// what tells how many uploads the kills cut.)
func (ctl *controller) removeTemps(s *server) int {
	vs, err := scanVolume(s.dir)
	if err != nil {
		ctl.t.Errorf("server %d: %v", s.index, err)
	}
	for _, p := range vs.tmps {
		os.Remove(p)
	}
	return len(vs.tmps)
}

// pause sleeps for a random time in [lo, hi) and reports whether the
// controller should go on.
func (ctl *controller) pause(lo, hi time.Duration) bool {
	timer := time.NewTimer(lo + time.Duration(ctl.rng.Int64N(int64(hi-lo))))
	defer timer.Stop()
	select {
	case <-ctl.stop:
		return false
	case <-timer.C:
		return true
	}
}

// pick returns a random server not given up, or nil if there is none.
func (ctl *controller) pick() *server {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	var live []*server
	for _, s := range ctl.c.servers {
		if !ctl.lost[s.index] {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[ctl.rng.IntN(len(live))]
}

// killsBetween returns the kills that may have fallen between start and
// end.
func (ctl *controller) killsBetween(start, end time.Time) []killEvent {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	var out []killEvent
	for _, k := range ctl.kills {
		if !k.at.Before(start) && !k.from.After(end) {
			out = append(out, k)
		}
	}
	return out
}

// counts returns the kills so far, the uploads they cut, the fills and
// the servers given up.
func (ctl *controller) counts() (kills, cut, fills, lost int) {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return len(ctl.kills), ctl.cut, ctl.fills, len(ctl.lost)
}

// isLost reports whether server i was given up.
func (ctl *controller) isLost(i int) bool {
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	return ctl.lost[i]
}
