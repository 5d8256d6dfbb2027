package keepstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

var errCollision = errors.New("hash collision")

// handlePut stores a block. Everything that can be decided from the
// request line and headers is decided before the body is read, so a
// client sending "Expect: 100-continue" uploads nothing when refused:
// net/http sends "100 Continue" only once the handler reads the body.
func (s *Server) handlePut(w *response, r *http.Request, path, tok string) {
	loc, ok := parseLocator(w, path)
	if !ok {
		return
	}
	size := r.ContentLength // -1 if unknown (chunked)
	if size > s.maxBlock {
		w.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("Content-Length %d: %v", size, errTooLarge), nil)
		return
	}
	if loc.Size >= 0 {
		if size >= 0 && size != loc.Size {
			w.fail(http.StatusBadRequest, fmt.Sprintf("size hint %d does not match Content-Length %d", loc.Size, size), nil)
			return
		}
		size = loc.Size
	}
	classes, err := requestedClasses(r.Header)
	if err != nil {
		w.fail(http.StatusBadRequest, err.Error(), nil)
		return
	}
	pl := newPlacement(loc.Hash, s.mounts, classes)
	if pl.next().op == opDone {
		// No volume can take the block.
		v := pl.verdict()
		w.fail(v.code, v.msg, v.err)
		return
	}

	// The write slot is taken only now, so that refusals decided from
	// the headers never wait for one or take one.
	up := newUpload(w, r.Body, s.minRate, s.grace)
	if !s.writes.acquire(up) {
		w.fail(http.StatusServiceUnavailable, "server busy: every write slot is taken by an upload keeping to the minimum rate", nil)
		return
	}
	defer s.writes.release(up)

	body := newCheckedReader(up, loc.Hash, size, s.maxBlock)
	if v := s.store(w, r, loc.Hash, body, size, pl); v.code != http.StatusOK {
		if v.code == http.StatusRequestTimeout {
			// The rest of the body will not be read: say so, rather
			// than leave the client sending into a closing connection.
			w.Header().Set("Connection", "close")
			_, evicted := isSlowUpload(v.err)
			s.metrics.uploadCut(evicted)
		}
		w.fail(v.code, v.msg, v.err)
		return
	}
	p := pl.got
	h := w.Header()
	h.Set(protocol.HeaderReplicasStored, strconv.Itoa(p.replicas))
	h.Set(protocol.HeaderClassesConfirmed, protocol.FormatConfirmed(p.done))
	if v, ok := p.volumes(); ok {
		h.Set(protocol.HeaderVolumesStored, v)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	signed := s.signer.Sign(locator.Locator{Hash: loc.Hash, Size: body.n}, tok, time.Now().Add(s.signer.TTL))
	io.WriteString(w, signed.String()+"\n")
}

// store carries out the steps of placement pl for the block hash, whose
// body is being uploaded, and returns its verdict. It decides nothing:
// which volume is read, written, refreshed or copied to, and what comes
// of a failure, is pl's to say.
func (s *Server) store(w *response, r *http.Request, hash string, body *checkedReader, size int64, pl *placement) verdict {
	// Not the request's context: net/http cancels that when the client
	// half-closes its connection after sending the whole body, and a
	// body received whole and verified is stored whatever the client
	// does next. A client gone mid-body fails the body's reads instead.
	ctx := context.WithoutCancel(r.Context())
	// What the last compare read of the body, for a repair to go on from.
	var (
		matched int64
		pending []byte
	)
	for st := pl.next(); st.op != opDone; st = pl.next() {
		var err error
		switch st.op {
		case opStat:
			_, err = st.m.vol.Stat(ctx, hash)
		case opCompare:
			matched, pending, err = compareBody(ctx, st.m, hash, body)
		case opTouch:
			err = st.m.vol.Touch(ctx, hash)
		case opVerify:
			err = verifyCopy(ctx, st.m, hash)
		case opRepair:
			if err = s.repair(ctx, st.m, hash, matched, pending, body, size); err == nil {
				s.metrics.repaired.Inc()
			}
		case opPut:
			err = st.m.vol.Put(ctx, hash, body, size)
		case opFinish:
			err = body.finish()
		case opCopy:
			err = copyBlock(ctx, st.from, st.m, hash)
		}
		n := pl.record(result{err: err, bodyErr: body.err, bodyRead: body.reads > 0})
		if n.msg != "" {
			s.logError(w, r, n.level, n.msg, n.err, slog.String("volume", n.m.id))
		}
	}
	return pl.verdict()
}

// compareBody reads the body and m's copy of the block side by side. It
// returns nil if they are equal, or the error that stopped it: the
// body's (see body.err), the volume's, or errDiffers at the first chunk
// where they differ. Then matched is the length of the equal prefix
// already read from the body and pending the body bytes read after it.
func compareBody(ctx context.Context, m *mount, hash string, body *checkedReader) (matched int64, pending []byte, err error) {
	rc, _, err := m.vol.Open(ctx, hash)
	if err != nil {
		return 0, nil, err
	}
	defer rc.Close()
	buf := getBuf()
	defer putBuf(buf)
	half := len(*buf) / 2
	stored, sent := (*buf)[:half], (*buf)[half:]
	for {
		ns, err := io.ReadFull(rc, stored)
		storedEnd := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !storedEnd {
			return 0, nil, err
		}
		nb, _ := io.ReadFull(body, sent)
		if body.err != nil {
			return 0, nil, body.err
		}
		if ns != nb || !bytes.Equal(stored[:ns], sent[:nb]) {
			return matched, bytes.Clone(sent[:nb]), errDiffers
		}
		if storedEnd {
			// Equal lengths, so the body ended too, and verified.
			return matched, nil, nil
		}
		matched += int64(nb)
	}
}

// errDiffers means a stored copy differs from the uploaded body.
var errDiffers = errors.New("stored copy differs from the upload")

// repair replaces m's copy of the block, found to fail its own hash,
// with the body being uploaded, of which compareBody has read matched
// bytes equal to the stored copy's and then pending. The stored copy's
// equal prefix, read again, stands in for the body bytes already read;
// what is written is checked against the hash as a whole, so nothing is
// stored unless it is right.
func (s *Server) repair(ctx context.Context, m *mount, hash string, matched int64, pending []byte, body *checkedReader, size int64) error {
	rc, _, err := m.vol.Open(ctx, hash)
	if err != nil {
		return err
	}
	defer rc.Close()
	content := io.MultiReader(io.LimitReader(rc, matched), bytes.NewReader(pending), body)
	if err := m.vol.Put(ctx, hash, newCheckedReader(content, hash, size, s.maxBlock), size); err != nil {
		return err
	}
	return body.finish()
}

// verifyCopy checks that m's copy of the block hashes correctly.
func verifyCopy(ctx context.Context, m *mount, hash string) error {
	rc, size, err := m.vol.Open(ctx, hash)
	if err != nil {
		return err
	}
	defer rc.Close()
	return newCheckedReader(rc, hash, size, locator.MaxBlockSize).finish()
}

// copyBlock copies the block from one volume to another, checking it.
func copyBlock(ctx context.Context, from, to *mount, hash string) error {
	rc, size, err := from.vol.Open(ctx, hash)
	if err != nil {
		return err
	}
	defer rc.Close()
	return to.vol.Put(ctx, hash, newCheckedReader(rc, hash, size, locator.MaxBlockSize), size)
}

// requestedClasses parses X-Keep-Storage-Classes (see
// protocol.ParseClasses); none means the default class. The error, for a
// header naming too many or too long classes, is meant for the client.
func requestedClasses(h http.Header) ([]string, error) {
	classes, err := protocol.ParseClasses(h.Values(protocol.HeaderStorageClasses))
	if err != nil {
		return nil, err
	}
	if len(classes) == 0 {
		classes = []string{DefaultStorageClass}
	}
	return classes, nil
}
