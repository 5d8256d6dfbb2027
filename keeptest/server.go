package keeptest

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// How a server fills X-Keep-Storage-Classes-Confirmed.
const (
	classesComputed = iota // from the requested and configured classes
	classesRaw             // a fixed raw value
	classesOmitted         // no header
)

// Server is one block server of a Cluster. Its methods are safe for
// concurrent use.
type Server struct {
	c    *Cluster
	uuid string
	ts   *httptest.Server
	port int
	kill sync.Once

	mu          sync.Mutex // protects the fields below
	release     func()     // frees the port a killed server holds (see Kill)
	typ         string
	readOnly    bool
	replicas    int    // X-Keep-Replicas-Stored; < 0 omits it
	replicasRaw string // sent instead of replicas when hasRawRepl
	hasRawRepl  bool
	classes     []string
	classesMode int
	classesRaw  string
	volume      string // X-Keep-Volumes-Stored names it; "" omits the header
	full        bool
	corrupt     bool
	putScript   []Response
	getScript   []Response
	putDefault  Response
	getDefault  Response
	blocks      map[string][]byte // by hash
	discarded   map[string]int64  // sizes of blocks kept without data (Cluster.Discard)
	reqs        []*Request        // in arrival order
	putCount    int
	inFlight    int // handlers running
	stalled     int // handlers in a Stall
	held        int // handlers waiting for a Hold
}

func newServer(c *Cluster, uuid string) *Server {
	s := &Server{
		c:         c,
		uuid:      uuid,
		typ:       keepclient.TypeDisk,
		replicas:  1,
		classes:   []string{"default"},
		blocks:    make(map[string][]byte),
		discarded: make(map[string]int64),
	}
	s.ts = newTestServer(s)
	s.port = s.ts.Listener.Addr().(*net.TCPAddr).Port
	return s
}

// UUID returns the server's service UUID.
func (s *Server) UUID() string { return s.uuid }

// URL returns the server's root URL, http://127.0.0.1:port, with no
// trailing slash.
func (s *Server) URL() string { return s.ts.URL }

// Service returns the server's current keep service record.
func (s *Server) Service() keepclient.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return keepclient.Service{
		UUID:     s.uuid,
		Host:     "127.0.0.1",
		Port:     s.port,
		Type:     s.typ,
		ReadOnly: s.readOnly,
	}
}

// SetType sets the service type reported by Service, e.g. "proxy". It does
// not change how the server behaves.
func (s *Server) SetType(typ string) {
	s.mu.Lock()
	s.typ = typ
	s.mu.Unlock()
}

// SetReadOnly marks the service read-only. A read-only server answers
// every PUT with 403 "read-only" without reading the body; a correct
// client never sends one, which tests can check with Requests.
func (s *Server) SetReadOnly(ro bool) {
	s.mu.Lock()
	s.readOnly = ro
	s.mu.Unlock()
}

// SetReplicas sets the X-Keep-Replicas-Stored value reported by a
// successful PUT (default 1); n < 0 omits the header. It replaces any
// SetReplicasHeader value.
func (s *Server) SetReplicas(n int) {
	s.mu.Lock()
	s.replicas, s.hasRawRepl = n, false
	s.mu.Unlock()
}

// SetReplicasHeader makes a successful PUT send raw, which may be
// malformed, as X-Keep-Replicas-Stored. Storage classes are then confirmed
// with the count from SetReplicas.
func (s *Server) SetReplicasHeader(raw string) {
	s.mu.Lock()
	s.replicasRaw, s.hasRawRepl = raw, true
	s.mu.Unlock()
}

// SetClasses sets the storage classes the server confirms (default:
// "default"). A successful PUT sends X-Keep-Storage-Classes-Confirmed
// "c1=R, c2=R": the requested classes (X-Keep-Storage-Classes) that the
// server has, in request order, each with the replica count R the PUT
// reports. When no class is requested, or none of the requested ones
// matches, it confirms its first class. With no classes the header is
// empty. SetClasses replaces any SetClassesHeader or OmitClasses setting.
func (s *Server) SetClasses(classes ...string) {
	s.mu.Lock()
	s.classes = append([]string(nil), classes...)
	s.classesMode = classesComputed
	s.mu.Unlock()
}

// SetClassesHeader makes a successful PUT send raw, which may be empty or
// malformed, as X-Keep-Storage-Classes-Confirmed.
func (s *Server) SetClassesHeader(raw string) {
	s.mu.Lock()
	s.classesRaw, s.classesMode = raw, classesRaw
	s.mu.Unlock()
}

// OmitClasses makes a successful PUT send no
// X-Keep-Storage-Classes-Confirmed header, like an old server.
func (s *Server) OmitClasses() {
	s.mu.Lock()
	s.classesMode = classesOmitted
	s.mu.Unlock()
}

// SetVolume makes a successful PUT name the volume the server stored the
// block on, as our keepstore does: "X-Keep-Volumes-Stored: uuid=R", R
// being the count it confirms storage classes with (its
// X-Keep-Replicas-Stored, at least 1). Servers given the same uuid answer
// like servers sharing a volume (an S3 bucket), though each keeps its own
// copy, so Holders lists them all. "" (the default) sends no such header,
// like an Arvados keepstore. A scripted Response.Header value for it
// replaces the one SetVolume sends.
func (s *Server) SetVolume(uuid string) {
	s.mu.Lock()
	s.volume = uuid
	s.mu.Unlock()
}

// SetFull makes every PUT answer 507 Insufficient Storage without reading
// the body.
func (s *Server) SetFull(full bool) {
	s.mu.Lock()
	s.full = full
	s.mu.Unlock()
}

// SetCorrupt makes GET return stored blocks with one byte flipped (same
// length), so the data no longer matches its hash. HEAD is unaffected.
func (s *Server) SetCorrupt(corrupt bool) {
	s.mu.Lock()
	s.corrupt = corrupt
	s.mu.Unlock()
}

// Script queues answers for the next PUTs, one per PUT in order, after any
// already queued. Once the queue is empty, PUTs get the SetDefault
// behaviour.
func (s *Server) Script(rs ...Response) {
	s.mu.Lock()
	s.putScript = append(s.putScript, rs...)
	s.mu.Unlock()
}

// ScriptGet queues answers for the next GET and HEAD requests, like Script.
func (s *Server) ScriptGet(rs ...Response) {
	s.mu.Lock()
	s.getScript = append(s.getScript, rs...)
	s.mu.Unlock()
}

// SetDefault sets the answer to every PUT once the Script queue is empty.
// The zero Response restores normal behaviour.
func (s *Server) SetDefault(r Response) {
	s.mu.Lock()
	s.putDefault = r
	s.mu.Unlock()
}

// SetGetDefault sets the answer to every GET and HEAD once the ScriptGet
// queue is empty. The zero Response restores normal behaviour.
func (s *Server) SetGetDefault(r Response) {
	s.mu.Lock()
	s.getDefault = r
	s.mu.Unlock()
}

// Requests returns the requests this server received, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = *r
		out[i].Header = r.Header.Clone()
	}
	return out
}

// PutCount returns how many PUT requests the server received, whatever
// their outcome.
func (s *Server) PutCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putCount
}

// InFlight returns how many requests the server is handling now.
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// Stalled returns how many requests are stalled now (see Response.Stall).
func (s *Server) Stalled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stalled
}

// Held returns how many requests are waiting for their Response.Hold now.
func (s *Server) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// WaitHeld blocks until at least n requests to this server wait for their
// Response.Hold, or ctx ends.
func (s *Server) WaitHeld(ctx context.Context, n int) error {
	return s.c.wait(ctx, func() bool { return s.Held() >= n })
}

// WaitStalled blocks until at least n requests to this server are stalled,
// or ctx ends.
func (s *Server) WaitStalled(ctx context.Context, n int) error {
	return s.c.wait(ctx, func() bool { return s.Stalled() >= n })
}

// Has reports whether the server stores the block with the given hash
// (32 hex digits; any +hints are ignored).
func (s *Server) Has(hash string) bool {
	_, ok := s.Block(hash)
	return ok
}

// Block returns a copy of the stored block with the given hash (32 hex
// digits; any +hints are ignored).
func (s *Server) Block(hash string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[hashOf(hash)]
	if !ok {
		return nil, false
	}
	return append([]byte{}, b...), true
}

// Store stores data as a block, as if it had been written earlier, and
// returns its locator (hash+size).
func (s *Server) Store(data []byte) string {
	l := locator.New(data)
	s.mu.Lock()
	s.blocks[l.Hash] = append([]byte{}, data...)
	s.mu.Unlock()
	return l.String()
}

// Delete removes the block with the given hash (32 hex digits; any +hints
// are ignored), if the server has it.
func (s *Server) Delete(hash string) {
	s.mu.Lock()
	delete(s.blocks, hashOf(hash))
	delete(s.discarded, hashOf(hash))
	s.mu.Unlock()
}

// Kill makes the server stop listening: later connections are refused and
// idle keep-alive connections are closed, so clients cannot reach it any
// more. Requests in progress may finish. Kill is idempotent; the server
// stays in Services and ProbeOrder. A client that picks an idle
// connection at the very moment Kill closes it may see EOF or a reset
// instead of "connection refused". Until the cluster closes, the port
// stays reserved, so that no other server started meanwhile (by another
// test or process) answers in the dead one's place.
func (s *Server) Kill() {
	s.kill.Do(func() {
		port := s.ts.Listener.Addr().(*net.TCPAddr).Port
		s.ts.Listener.Close()
		s.ts.Config.SetKeepAlivesEnabled(false)
		s.mu.Lock()
		s.release = holdPort(port)
		s.mu.Unlock()
	})
}

// String returns the server's UUID.
func (s *Server) String() string { return s.uuid }

// replicasHeader returns the X-Keep-Replicas-Stored value for a successful
// PUT answered with r, whether to send it, and the count to confirm
// storage classes with. The caller holds s.mu.
func (s *Server) replicasHeader(r Response) (value string, send bool, count int) {
	n := s.replicas
	if r.Replicas != 0 {
		n = r.Replicas
	}
	count = max(n, 1)
	switch {
	case r.Replicas == 0 && s.hasRawRepl:
		return s.replicasRaw, true, count
	case n < 0:
		return "", false, count
	}
	return strconv.Itoa(n), true, count
}

// classesHeader returns the X-Keep-Storage-Classes-Confirmed value for a
// successful PUT that requested the classes in req (as
// protocol.ParseClasses returns them), and whether to send it. The caller
// holds s.mu.
func (s *Server) classesHeader(req []string, count int) (string, bool) {
	switch s.classesMode {
	case classesRaw:
		return s.classesRaw, true
	case classesOmitted:
		return "", false
	}
	if len(s.classes) == 0 {
		return "", true
	}
	have := make(map[string]bool, len(s.classes))
	for _, c := range s.classes {
		have[c] = true
	}
	var confirmed []string
	for _, c := range req {
		if have[c] {
			confirmed = append(confirmed, c)
		}
	}
	if len(confirmed) == 0 {
		confirmed = s.classes[:1]
	}
	var b []byte
	for i, c := range confirmed {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, c...)
		b = append(b, '=')
		b = strconv.AppendInt(b, int64(count), 10)
	}
	return string(b), true
}

// nextResponse pops the next scripted answer for a request of the given
// method, or returns the default. The caller holds s.mu.
func (s *Server) nextResponse(method string) Response {
	script, def := &s.getScript, s.getDefault
	if method == http.MethodPut {
		script, def = &s.putScript, s.putDefault
	}
	if len(*script) == 0 {
		return def
	}
	r := (*script)[0]
	*script = (*script)[1:]
	return r
}
