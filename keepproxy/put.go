package keepproxy

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// errNoBuffer is returned by receive when the write buffers cannot grow
// to hold the rest of a body.
var errNoBuffer = errors.New("proxy busy: no buffer space for the rest of the block")

// growJump: a body's buffer doubles as its bytes arrive, and jumps to the
// whole block once it holds an eighth of it. A client holds at most
// twice what it has sent in the small steps, eight times at the jump,
// and an honest 64 MiB body costs 16 MiB of copying. Each step holds old
// and new buffers for the moment of the copy; where the write buffers
// have no room for that, the PUT is answered 503 with Retry-After.
const growJump = 8

// growHeadroom is what the write pool holds beyond MaxWrites blocks: the
// buffer a body jumps from, so that MaxWrites bodies of 64 MiB arriving
// together all fit.
const growHeadroom = locator.MaxBlockSize / growJump

func (p *Proxy) put(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, kc *keepclient.Client, loc locator.Locator, reqID string) {
	ph, rerr := checkPut(r, loc)
	if rerr != nil {
		http.Error(w, rerr.msg, rerr.status)
		return
	}
	// Refused when busy before the body is read, like everything above,
	// so that a client sending "Expect: 100-continue" uploads nothing.
	// Both checks are optimistic: a body still arriving holds neither a
	// slot nor more buffer than its bytes so far.
	if len(p.writeSlots) == cap(p.writeSlots) {
		busy(w, "proxy busy: too many writes in progress")
		return
	}
	if held, idle := p.writeBufs.usage(); held-idle+int64(classSizeFor(ph.size)) > p.writeBufs.limit {
		busy(w, "proxy busy: write buffers full")
		return
	}

	body := &pacedBody{r: r.Body, rc: rc, pace: newPacer(p.opts.MinRate, p.opts.RateWindow, time.Now()),
		first: func() { p.event("receiving") }}
	rc.SetReadDeadline(body.pace.deadline())
	h := md5.New()
	p.receiving.Add(1)
	data, err := p.receive(body, int(ph.size), h)
	p.receiving.Add(-1)
	defer p.writeBufs.put(data)
	if err == nil {
		rc.SetReadDeadline(time.Time{})
	}
	switch {
	case errors.Is(err, errSlow):
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("%v (the minimum rate is %d bytes/s)", err, p.opts.MinRate), http.StatusRequestTimeout)
		return
	case errors.Is(err, errNoBuffer):
		busy(w, err.Error())
		return
	case err != nil:
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != loc.Hash {
		http.Error(w, "hash mismatch: body md5 is "+got, http.StatusBadRequest)
		return
	}
	if ph.replicas == 0 {
		w.Header().Set(protocol.HeaderReplicasStored, "0")
		io.WriteString(w, locator.Locator{Hash: loc.Hash, Size: ph.size}.String())
		return
	}

	p.writing.Add(1)
	defer p.writing.Add(-1)
	// The body is here: wait for a slot (rarely needed, only when others
	// took the free ones while it arrived) rather than waste the upload.
	select {
	case p.writeSlots <- struct{}{}:
		defer func() { <-p.writeSlots }()
	case <-r.Context().Done():
		http.Error(w, "client went away", protocol.StatusClientClosedRequest)
		return
	}
	res, err := kc.Put(r.Context(), data, keepclient.PutOptions{
		Replicas:       ph.replicas,
		StorageClasses: ph.classes,
		RequestID:      reqID,
		Hash:           loc.Hash,
	})
	stored := 0
	if res != nil {
		stored = res.Replicas
	}
	w.Header().Set(protocol.HeaderReplicasStored, strconv.Itoa(stored))
	if stored > 0 {
		// Some replicas are better than none: report the true count and
		// let the client look elsewhere for the rest.
		if len(res.Classes) > 0 {
			w.Header().Set(protocol.HeaderClassesConfirmed, protocol.FormatConfirmed(res.Classes))
		}
		// The volumes, when every server behind named them: a client
		// writing through two proxies in front of the same servers
		// then counts each volume once.
		if len(res.Volumes) > 0 {
			w.Header().Set(protocol.HeaderVolumesStored, protocol.FormatVolumes(res.Volumes))
		}
		if err != nil {
			p.log.Warn("stored fewer replicas than desired", "request_id", reqID, "err", err)
		}
		io.WriteString(w, res.Locator.String())
		return
	}
	status, retryAfter := protocol.ProxyStatus(writeFailure(err))
	if retryAfter != "" {
		w.Header().Set(protocol.HeaderRetryAfter, retryAfter)
	}
	http.Error(w, err.Error(), status)
}

// classSizeFor is the buffer capacity a whole body of size bytes takes.
func classSizeFor(size int64) int {
	if size <= 0 {
		return 0
	}
	return classSize(classOf(int(size)))
}

// receive reads exactly size bytes of body into a buffer from the write
// pool, hashing them into h. The buffer starts small and grows as bytes
// arrive (see growJump). The caller returns the buffer, which may be nil
// (an empty body, or an error), to p.writeBufs.
func (p *Proxy) receive(body io.Reader, size int, h hash.Hash) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	buf := p.writeBufs.get(min(size, minBuffer))
	if buf == nil {
		return nil, errNoBuffer
	}
	n := 0
	for n < size {
		if n == len(buf) {
			next := 2 * len(buf)
			if growJump*len(buf) >= size {
				next = size
			}
			nb := p.writeBufs.get(min(next, size))
			if nb == nil {
				return buf, errNoBuffer
			}
			copy(nb, buf)
			p.writeBufs.put(buf)
			buf = nb
		}
		m, err := body.Read(buf[n:])
		h.Write(buf[n : n+m])
		n += m
		if err == io.EOF && n < size {
			err = fmt.Errorf("body ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
		if err != nil && err != io.EOF {
			return buf, err
		}
		if err == io.EOF {
			break
		}
	}
	return buf, nil
}

// writeFailure describes, for protocol.ProxyStatus, a write that stored
// nothing: the last answer of every server it tried, or that its client
// went away.
func writeFailure(err error) protocol.ProxyFailure {
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) {
		return protocol.ProxyFailure{Canceled: errors.Is(err, context.Canceled)}
	}
	f := protocol.ProxyFailure{Answers: make([]protocol.Answer, 0, len(ire.Services))}
	for _, s := range ire.Services {
		f.Answers = append(f.Answers, protocol.Answer{Status: s.Status, Retryable: s.Retryable})
	}
	return f
}
