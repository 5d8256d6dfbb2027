package keeptest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// peerPoll is how often a paused handler checks whether its client has
// hung up. net/http only notices a hang-up by itself once the request body
// has been read to the end, which a stalled upload never is.
const peerPoll = 10 * time.Millisecond

// errGone means the client went away or the cluster closed.
var errGone = errors.New("keeptest: client gone or cluster closed")

type connKey struct{}

// withConn is the servers' http.Server.ConnContext: it puts the connection
// in the context so handlers can watch it.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// call is one request being handled.
type call struct {
	s    *Server
	w    http.ResponseWriter
	r    *http.Request
	rec  *Request  // the record in s.reqs; guarded by s.mu
	conn net.Conn  // the client connection, or nil if unknown
	resp Response  // scripted or default answer
	body io.Reader // r.Body, counting into rec.BodyRead
}

// ServeHTTP implements the Keep block API with the configured faults.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := s.begin(w, r)
	defer k.end()
	for name, vals := range k.resp.Header {
		w.Header()[name] = append([]string(nil), vals...)
	}
	if id := r.Header.Get(protocol.HeaderRequestID); id != "" {
		w.Header().Set(protocol.HeaderRequestID, id)
	}
	switch r.Method {
	case http.MethodPut:
		k.put()
	case http.MethodGet, http.MethodHead:
		k.get()
	default:
		k.reply(http.StatusBadRequest, "Bad Request\n")
	}
}

// begin records the request and picks its scripted answer.
func (s *Server) begin(w http.ResponseWriter, r *http.Request) *call {
	rec := &Request{
		Server: s.uuid,
		Method: r.Method,
		Path:   r.URL.Path,
		Header: r.Header.Clone(),
		Time:   time.Now(),
	}
	k := &call{s: s, w: w, r: r, rec: rec}
	k.conn, _ = r.Context().Value(connKey{}).(net.Conn)
	s.mu.Lock()
	rec.Seq = int(s.c.seq.Add(1))
	s.reqs = append(s.reqs, rec)
	s.inFlight++
	switch r.Method {
	case http.MethodPut:
		s.putCount++
		k.resp = s.nextResponse(r.Method)
	case http.MethodGet, http.MethodHead:
		k.resp = s.nextResponse(r.Method)
	}
	s.mu.Unlock()
	s.c.notify()
	// r.Body itself must stay as it is: net/http inspects its type to
	// handle Expect: 100-continue and unread bodies.
	k.body = &countingBody{r: r.Body, k: k}
	return k
}

// end runs when the handler returns, also after an abort.
func (k *call) end() {
	k.s.mu.Lock()
	k.s.inFlight--
	k.s.mu.Unlock()
	k.s.c.notify()
}

// put handles PUT /hash.
func (k *call) put() {
	resp := k.resp
	k.preamble()
	if resp.Stall {
		if _, err := k.read(resp.StallAfter, resp.Rate); err != nil {
			k.abort()
		}
		k.stall()
	}
	if resp.scriptedStatus() {
		k.reply(resp.Status, resp.Body)
		return
	}

	// Refusals come before the first body read, so that a client waiting
	// for "100 Continue" never sends the body.
	k.s.mu.Lock()
	readOnly, full := k.s.readOnly, k.s.full
	k.s.mu.Unlock()
	hash, ok := pathHash(k.r.URL.Path)
	classes, classErr := protocol.ParseClasses(k.r.Header.Values(protocol.HeaderStorageClasses))
	switch {
	case readOnly:
		k.reply(http.StatusForbidden, "read-only\n")
		return
	case full:
		k.reply(http.StatusInsufficientStorage, "insufficient storage\n")
		return
	case !ok:
		k.reply(http.StatusBadRequest, "bad locator\n")
		return
	case classErr != nil:
		k.reply(http.StatusBadRequest, classErr.Error()+"\n")
		return
	case k.r.ContentLength > locator.MaxBlockSize:
		k.reply(http.StatusRequestEntityTooLarge, "block too large\n")
		return
	}

	if k.s.c.discard.Load() && resp.Rate == 0 {
		k.putDiscard(hash, resp, classes)
		return
	}
	data, err := k.read(locator.MaxBlockSize+1, resp.Rate)
	if err != nil {
		k.abort()
	}
	if len(data) > locator.MaxBlockSize {
		k.reply(http.StatusRequestEntityTooLarge, "block too large\n")
		return
	}
	l := locator.New(data)
	if l.Hash != hash {
		k.reply(http.StatusBadRequest, "hash mismatch\n")
		return
	}
	if signer, _ := k.s.c.signing(); len(signer.Key) > 0 {
		// Without a usable token the locator is signed for "", which
		// no reader can present: as unusable as Arvados's unsigned one.
		token, _ := protocol.BearerToken(k.r.Header)
		l = signer.Sign(l, token, time.Now().Add(signer.TTL))
	}
	body := l.String() + "\n"
	if resp.Body != "" {
		body = resp.Body
	}

	k.s.mu.Lock()
	k.s.blocks[l.Hash] = data
	k.s.mu.Unlock()
	k.stored(resp, classes)
	k.reply(http.StatusOK, body)
}

// stored sets the headers of a successful PUT answered with resp that
// requested classes: replicas, classes confirmed and, with SetVolume,
// volumes.
func (k *call) stored(resp Response, classes []string) {
	h := k.w.Header()
	k.s.mu.Lock()
	repl, sendRepl, count := k.s.replicasHeader(resp)
	confirmed, sendClasses := k.s.classesHeader(classes, count)
	volume := k.s.volume
	k.s.mu.Unlock()
	if sendRepl {
		h.Set(protocol.HeaderReplicasStored, repl)
	}
	if sendClasses {
		h.Set(protocol.HeaderClassesConfirmed, confirmed)
	}
	if _, scripted := resp.Header[http.CanonicalHeaderKey(protocol.HeaderVolumesStored)]; volume != "" && !scripted {
		h.Set(protocol.HeaderVolumesStored, volume+"="+strconv.Itoa(count))
	}
}

// putDiscard verifies and acknowledges an upload like put, keeping only
// the block's hash (see Cluster.Discard).
func (k *call) putDiscard(hash string, resp Response, classes []string) {
	h := md5.New()
	n, err := io.Copy(h, io.LimitReader(k.body, locator.MaxBlockSize+1))
	if err != nil {
		k.abort()
	}
	if n > locator.MaxBlockSize {
		k.reply(http.StatusRequestEntityTooLarge, "block too large\n")
		return
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		k.reply(http.StatusBadRequest, "hash mismatch\n")
		return
	}
	k.s.mu.Lock()
	k.s.blocks[hash] = nil
	k.s.discarded[hash] = n
	k.s.mu.Unlock()
	k.stored(resp, classes)
	k.reply(http.StatusOK, locator.Locator{Hash: hash, Size: n}.String()+"\n")
}

// get handles GET and HEAD /locator.
func (k *call) get() {
	resp := k.resp
	k.preamble()
	if resp.Stall && resp.StallAfter <= 0 {
		k.stall()
	}
	if resp.scriptedStatus() {
		k.reply(resp.Status, resp.Body)
		return
	}
	l, err := locator.Parse(strings.TrimPrefix(k.r.URL.Path, "/"))
	if err != nil {
		k.reply(http.StatusBadRequest, "bad locator\n")
		return
	}
	if signer, check := k.s.c.signing(); check {
		token, err := protocol.BearerToken(k.r.Header)
		if err != nil {
			k.reply(http.StatusUnauthorized, err.Error()+"\n")
			return
		}
		if err := signer.Verify(l, token, time.Now()); errors.Is(err, locator.ErrExpired) {
			k.reply(http.StatusUnauthorized, "expired signature\n")
			return
		} else if err != nil {
			k.reply(http.StatusBadRequest, "invalid signature\n")
			return
		}
	}

	var data []byte
	if resp.Status == http.StatusOK && resp.Body != "" {
		data = []byte(resp.Body)
	} else {
		k.s.mu.Lock()
		stored, ok := k.s.blocks[l.Hash]
		data = append([]byte(nil), stored...)
		corrupt := k.s.corrupt && k.r.Method == http.MethodGet
		size, discarded := k.s.discarded[l.Hash]
		k.s.mu.Unlock()
		if !ok {
			k.reply(http.StatusNotFound, "not found\n")
			return
		}
		if discarded && stored == nil {
			// Its size is known, its data is not: HEAD works, GET cannot.
			if k.r.Method == http.MethodHead {
				k.w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
				k.setStatus(http.StatusOK)
				k.w.WriteHeader(http.StatusOK)
				return
			}
			k.reply(http.StatusInternalServerError, "block data discarded (Cluster.Discard)\n")
			return
		}
		if corrupt && len(data) > 0 {
			data[len(data)/2] ^= 0xff
		}
	}

	k.w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	k.setStatus(http.StatusOK)
	k.w.WriteHeader(http.StatusOK)
	if resp.Stall {
		if k.r.Method == http.MethodGet {
			n := min(resp.StallAfter, int64(len(data)))
			if k.write(data[:n], resp.Rate) != nil {
				k.abort()
			}
		}
		_ = http.NewResponseController(k.w).Flush()
		k.stall()
	}
	if k.r.Method == http.MethodHead {
		return
	}
	if k.write(data, resp.Rate) != nil {
		k.abort()
	}
}

// preamble carries out the Delay, Hold and Reset of the scripted answer.
func (k *call) preamble() {
	if k.resp.Delay > 0 && k.pause(k.resp.Delay) != nil {
		k.abort()
	}
	if k.resp.Hold != nil && k.wait(k.resp.Hold) != nil {
		k.abort()
	}
	if k.resp.Reset {
		k.reset()
	}
}

// reply answers code with text body.
func (k *call) reply(code int, body string) {
	k.setStatus(code)
	k.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	k.w.WriteHeader(code)
	_, _ = io.WriteString(k.w, body)
}

func (k *call) setStatus(code int) {
	k.s.mu.Lock()
	k.rec.Status = code
	k.rec.Done = time.Now()
	k.s.mu.Unlock()
}

// abort ends the handler without an answer; net/http closes the
// connection and logs nothing.
func (k *call) abort() {
	panic(http.ErrAbortHandler)
}

// reset closes the connection with a TCP RST and ends the handler.
func (k *call) reset() {
	conn, _, err := http.NewResponseController(k.w).Hijack()
	if err != nil {
		k.abort()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
	// The connection is gone; unwind like an abort. net/http does not
	// touch a hijacked connection.
	k.abort()
}

// stall blocks until the client goes away or the cluster closes, then
// ends the handler without an answer.
func (k *call) stall() {
	k.s.mu.Lock()
	k.s.stalled++
	k.s.mu.Unlock()
	k.s.c.notify()
	_ = k.pause(-1)
	k.s.mu.Lock()
	k.s.stalled--
	k.s.mu.Unlock()
	k.s.c.notify()
	k.abort()
}

// pause waits for d, or until the client goes away or the cluster closes
// if d < 0. It returns errGone if the wait was cut short.
func (k *call) pause(d time.Duration) error {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	return k.until(timeout, nil)
}

// wait waits until hold is closed. It returns errGone if the client went
// away or the cluster closed first.
func (k *call) wait(hold <-chan struct{}) error {
	k.s.mu.Lock()
	k.s.held++
	k.s.mu.Unlock()
	k.s.c.notify()
	defer func() {
		k.s.mu.Lock()
		k.s.held--
		k.s.mu.Unlock()
		k.s.c.notify()
	}()
	return k.until(nil, hold)
}

// until waits until timeout fires or hold is closed (a nil channel never
// is). It returns errGone if the client went away or the cluster closed
// first.
func (k *call) until(timeout <-chan time.Time, hold <-chan struct{}) error {
	var poll <-chan time.Time
	if canWatchPeer && k.conn != nil {
		t := time.NewTicker(peerPoll)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-timeout:
			return nil
		case <-hold:
			return nil
		case <-k.r.Context().Done():
			return errGone
		case <-k.s.c.done:
			return errGone
		case <-poll:
			if peerGone(k.conn) {
				return errGone
			}
		}
	}
}

// read reads up to limit bytes of the request body, or all of it if it is
// shorter, at most rate bytes per second if rate > 0.
func (k *call) read(limit, rate int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := k.r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n))
	}
	chunk := int64(64 << 10)
	if rate > 0 {
		chunk = max(1, min(chunk, rate/20))
	}
	p := make([]byte, min(chunk, max(limit, 1)))
	start := time.Now()
	for int64(buf.Len()) < limit {
		n, err := k.body.Read(p[:min(int64(len(p)), limit-int64(buf.Len()))])
		buf.Write(p[:n])
		if rate > 0 && n > 0 {
			if err := k.pace(start, int64(buf.Len()), rate); err != nil {
				return nil, err
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// write writes data as the response body, at most rate bytes per second
// if rate > 0.
func (k *call) write(data []byte, rate int64) error {
	if rate <= 0 {
		_, err := k.w.Write(data)
		return err
	}
	chunk := max(1, min(64<<10, rate/20))
	rc := http.NewResponseController(k.w)
	start := time.Now()
	for done := int64(0); done < int64(len(data)); {
		n := min(chunk, int64(len(data))-done)
		if _, err := k.w.Write(data[done : done+n]); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		done += n
		if err := k.pace(start, done, rate); err != nil {
			return err
		}
	}
	return nil
}

// pace waits until moving n bytes since start fits within rate bytes per
// second.
func (k *call) pace(start time.Time, n, rate int64) error {
	due := start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		return k.pause(d)
	}
	return nil
}

// countingBody counts the request body bytes the handler reads into the
// request record.
type countingBody struct {
	r io.Reader
	k *call
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.k.s.mu.Lock()
		b.k.rec.BodyRead += int64(n)
		b.k.s.mu.Unlock()
	}
	return n, err
}

// pathHash returns the hash from a PUT path /hash[+size[+hints]]; the
// part after the hash is not checked.
func pathHash(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/")
	if !ok {
		return "", false
	}
	hash, _, _ := strings.Cut(rest, "+")
	if locator.ParseHash(hash) != nil {
		return "", false
	}
	return hash, true
}

// hashOf returns the hash part of a locator or bare hash.
func hashOf(s string) string {
	h, _, _ := strings.Cut(s, "+")
	return h
}
