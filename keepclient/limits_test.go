package keepclient_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
)

// countingServer is a minimal disk service that records peak concurrency
// and the number of connections opened.
type countingServer struct {
	srv   *httptest.Server
	load  *peakCounter
	conns atomic.Int32
	gate  chan struct{} // when non-nil, each PUT waits for a token
}

// peakCounter tracks the most requests running at once, possibly across
// several servers.
type peakCounter struct {
	running atomic.Int32
	peak    atomic.Int32
}

func (pc *peakCounter) enter() {
	n := pc.running.Add(1)
	for {
		p := pc.peak.Load()
		if n <= p || pc.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (pc *peakCounter) leave() { pc.running.Add(-1) }

func newCountingServer(t *testing.T, gate chan struct{}, load *peakCounter) *countingServer {
	if load == nil {
		load = new(peakCounter)
	}
	cs := &countingServer{gate: gate, load: load}
	cs.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.load.enter()
		defer cs.load.leave()
		body, _ := io.ReadAll(r.Body)
		if cs.gate != nil {
			select {
			case <-cs.gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("X-Keep-Replicas-Stored", "1")
		fmt.Fprintf(w, "%s+%d\n", r.URL.Path[1:33], len(body))
	}))
	cs.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			cs.conns.Add(1)
		}
	}
	cs.srv.Start()
	t.Cleanup(cs.srv.Close)
	return cs
}

func (cs *countingServer) service(i int) keepclient.Service {
	return diskService(cs.srv, fmt.Sprintf("zzzzz-bi6l4-%015d", i))
}

func TestClientBoundsConcurrentRequests(t *testing.T) {
	gate := make(chan struct{})
	load := new(peakCounter)
	var svcs []keepclient.Service
	for i := 0; i < 3; i++ {
		svcs = append(svcs, newCountingServer(t, gate, load).service(i))
	}
	kc, err := keepclient.New(keepclient.Options{Services: svcs, Replicas: 3, MaxRequests: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	const puts = 8
	var wg sync.WaitGroup
	errs := make(chan error, puts)
	for i := 0; i < puts; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := kc.Put(context.Background(), []byte(fmt.Sprint("block ", i)), keepclient.PutOptions{})
			errs <- err
		}()
	}
	// Release the servers one request at a time: with a limit of 2 the
	// servers can never see more than 2 requests at once.
	for i := 0; i < puts*3; i++ {
		gate <- struct{}{}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if peak := load.peak.Load(); peak > 2 {
		t.Errorf("servers saw up to %d concurrent requests in total, limit 2", peak)
	}
}

func TestClientReusesConnections(t *testing.T) {
	s := newCountingServer(t, nil, nil)
	kc, err := keepclient.New(keepclient.Options{Services: []keepclient.Service{s.service(0)}, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	for i := 0; i < 20; i++ {
		if _, err := kc.Put(context.Background(), []byte(fmt.Sprint("reuse ", i)), keepclient.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("20 sequential writes opened %d connections, want 1", n)
	}
}

func TestPutConnectRefusedIsQuick(t *testing.T) {
	// A service nobody listens on must cost a refused connection, not a
	// timeout.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	good := newCountingServer(t, nil, nil)
	svcs := []keepclient.Service{
		{UUID: "zzzzz-bi6l4-000000000000009", Host: "127.0.0.1", Port: addr.Port, Type: keepclient.TypeDisk},
		good.service(1),
	}
	kc, _ := keepclient.New(keepclient.Options{Services: svcs, Replicas: 1, RetryDelay: time.Millisecond})
	defer kc.Close()
	res, err := kc.Put(context.Background(), []byte("refused"), keepclient.PutOptions{})
	if err != nil || res.Replicas != 1 {
		t.Fatalf("Put: %v", err)
	}
}
