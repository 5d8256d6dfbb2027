package keepstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	anyWritable, cands := s.writeCandidates(loc.Hash, classes)
	if !anyWritable {
		w.fail(http.StatusInsufficientStorage, "insufficient storage: all volumes are read-only", nil)
		return
	}
	if len(cands) == 0 {
		w.fail(http.StatusInsufficientStorage,
			fmt.Sprintf("insufficient storage: no writable volume has storage class %s", strings.Join(classes, " or ")), nil)
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
	p := newProgress(classes)
	if code, msg, err := s.store(w, r, loc.Hash, body, size, cands, p); code != http.StatusOK {
		if code == http.StatusRequestTimeout {
			// The rest of the body will not be read: say so, rather
			// than leave the client sending into a closing connection.
			w.Header().Set("Connection", "close")
			_, evicted := isSlowUpload(err)
			s.metrics.uploadCut(evicted)
		}
		w.fail(code, msg, err)
		return
	}
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

// store puts the block on the candidate volumes (writable, of a wanted
// class, in rendezvous order) until every wanted class has a copy, and
// returns the HTTP status, message and log detail.
//
// The body is read once: compared with an existing copy if a candidate
// has one, else written to the first candidate that takes it. Any further
// copies the classes need are made from that first one.
func (s *Server) store(w *response, r *http.Request, hash string, body *checkedReader, size int64, cands []*mount, p *progress) (int, string, error) {
	// Not the request's context: net/http cancels that when the client
	// half-closes its connection after sending the whole body, and a
	// body received whole and verified is stored whatever the client
	// does next. A client gone mid-body fails the body's reads instead.
	ctx := context.WithoutCancel(r.Context())
	has := map[*mount]bool{}
	for _, m := range cands {
		if _, err := m.vol.Stat(ctx, hash); err == nil {
			has[m] = true
		}
	}

	// source is the volume whose copy is known to match the body.
	var source *mount
	for _, m := range cands {
		if !has[m] {
			continue
		}
		matched, pending, err := compareBody(ctx, m, hash, body)
		switch {
		case err == nil:
			source = m
			if err := m.vol.Touch(ctx, hash); err != nil {
				// Unrefreshed, the copy may be deleted soon; count it
				// only once copied to another volume below.
				s.logError(w, r, slog.LevelWarn, "touching existing block", err, slog.String("volume", m.id))
			} else {
				p.add(m)
			}
		case body.err != nil:
			code, msg := bodyFailure(body.err)
			return code, msg, body.err
		case errors.Is(err, errDiffers):
			if verifyCopy(ctx, m, hash) == nil {
				// A copy that hashes right but differs: the body fails
				// its hash, or MD5 really collided.
				if err := body.finish(); err != nil {
					code, msg := bodyFailure(err)
					return code, msg, err
				}
				s.logError(w, r, slog.LevelError, "stored block differs from uploaded data", errCollision, slog.String("volume", m.id))
				return http.StatusInternalServerError, "hash collision", errCollision
			}
			if err := s.repair(ctx, m, hash, matched, pending, body, size); err != nil {
				if body.err != nil {
					code, msg := bodyFailure(body.err)
					return code, msg, body.err
				}
				return volumeFailure([]error{fmt.Errorf("volume %s: replacing corrupt copy: %w", m.id, err)})
			}
			s.metrics.repaired.Inc()
			s.logError(w, r, slog.LevelWarn, "replaced corrupt stored copy with the uploaded data", errChecksum, slog.String("volume", m.id))
			source = m
			p.add(m)
		case body.reads == 0:
			// The copy vanished or could not be opened: try the next.
			delete(has, m)
			continue
		default:
			return http.StatusServiceUnavailable, "volume unavailable", fmt.Errorf("volume %s: %w", m.id, err)
		}
		break
	}

	if source == nil {
		var errs []error
		for _, m := range cands {
			err := m.vol.Put(ctx, hash, body, size)
			if err == nil {
				source = m
				p.add(m)
				break
			}
			if body.err != nil {
				code, msg := bodyFailure(body.err)
				return code, msg, body.err
			}
			err = fmt.Errorf("volume %s: %w", m.id, err)
			if body.reads > 0 {
				// Part of the body went to a volume that then failed; it
				// cannot be read again for another.
				return volumeFailure([]error{err})
			}
			errs = append(errs, err)
		}
		if source == nil {
			return volumeFailure(errs)
		}
	}
	if err := body.finish(); err != nil {
		// Only a Volume that stops reading before io.EOF gets here.
		code, msg := bodyFailure(err)
		return code, msg, err
	}

	for _, m := range cands {
		if m == source || p.holds(m) || !p.wants(m) {
			continue
		}
		if has[m] && verifyCopy(ctx, m, hash) == nil {
			if err := m.vol.Touch(ctx, hash); err == nil {
				p.add(m)
				continue
			}
		}
		if err := copyBlock(ctx, source, m, hash); err != nil {
			s.logError(w, r, slog.LevelWarn, "copying block for storage classes", err, slog.String("volume", m.id))
			continue
		}
		p.add(m)
	}
	if p.replicas == 0 {
		return http.StatusServiceUnavailable, "volume unavailable", errors.New("could not refresh or copy existing block")
	}
	return http.StatusOK, "", nil
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

// bodyFailure maps a checkedReader error to a status and message. The
// messages hold sizes and hashes only, never credentials.
func bodyFailure(err error) (int, string) {
	if slow, _ := isSlowUpload(err); slow {
		return http.StatusRequestTimeout, err.Error()
	}
	if errors.Is(err, errTooLarge) {
		return http.StatusRequestEntityTooLarge, err.Error()
	}
	return http.StatusBadRequest, err.Error()
}

// volumeFailure maps the errors of volumes that could not take a block:
// 507 if they were all full or read-only (retrying will not help); 503
// "volume busy" if some had room but for uploads in flight (which may
// yet fail); else 503 "volume unavailable" (a volume is failing, perhaps
// briefly). fail sends every 503 with Retry-After.
func volumeFailure(errs []error) (int, string, error) {
	busy := false
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrBusy):
			busy = true
		case !errors.Is(err, ErrFull) && !errors.Is(err, ErrReadOnly):
			return http.StatusServiceUnavailable, "volume unavailable", errors.Join(errs...)
		}
	}
	if busy {
		return http.StatusServiceUnavailable, "volume busy: its free room is promised to uploads in flight; try again shortly", errors.Join(errs...)
	}
	return http.StatusInsufficientStorage, "insufficient storage", errors.Join(errs...)
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

// writeCandidates returns whether any volume is writable, and the
// writable volumes having one of classes, in rendezvous order for hash.
func (s *Server) writeCandidates(hash string, classes []string) (bool, []*mount) {
	anyWritable := false
	var ms []*mount
	for _, m := range s.mounts {
		if m.readOnly {
			continue
		}
		anyWritable = true
		for _, c := range classes {
			if m.hasClass(c) {
				ms = append(ms, m)
				break
			}
		}
	}
	return anyWritable, rendezvous(hash, ms)
}

// progress tracks which wanted classes a PUT has covered.
type progress struct {
	todo     map[string]bool // wanted classes with no copy yet
	done     map[string]int  // replicas per class of the volumes holding the block
	replicas int
	holders  []*mount
}

func newProgress(classes []string) *progress {
	p := &progress{todo: map[string]bool{}, done: map[string]int{}}
	for _, c := range classes {
		p.todo[c] = true
	}
	return p
}

// wants reports whether m would cover a class still wanted.
func (p *progress) wants(m *mount) bool {
	for _, c := range m.classes {
		if p.todo[c] {
			return true
		}
	}
	return false
}

func (p *progress) holds(m *mount) bool { return slices.Contains(p.holders, m) }

// volumes returns the X-Keep-Volumes-Stored value naming the volumes
// counted in replicas, each with its Replication, so that a client can
// tell two servers sharing a volume from two copies; false when a volume
// id cannot be named in the header (the client then counts the answer as
// it would an Arvados keepstore's).
func (p *progress) volumes() (string, bool) {
	m := make(map[string]int, len(p.holders))
	for _, h := range p.holders {
		if !protocol.ValidVolumeID(h.id) {
			return "", false
		}
		m[h.id] += h.replication
	}
	return protocol.FormatVolumes(m), len(m) > 0
}

func (p *progress) add(m *mount) {
	p.replicas += m.replication
	for _, c := range m.classes {
		p.done[c] += m.replication
		delete(p.todo, c)
	}
	p.holders = append(p.holders, m)
}
