package keepstore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/keepproject/keep/internal/protocol"
)

// stepOp is what one step of a placement asks of the volumes or the body.
type stepOp uint8

const (
	opStat    stepOp = iota // does the volume hold a copy?
	opCompare               // read the body against the volume's copy
	opTouch                 // refresh the volume's copy
	opVerify                // check the volume's copy against its hash
	opRepair                // replace the volume's copy with the body, continuing the compare
	opPut                   // write the body to the volume
	opFinish                // read the rest of the body, checking it
	opCopy                  // copy the block from the source volume to the volume
	opDone                  // nothing more: verdict says how the PUT ends
)

var opNames = [...]string{"stat", "compare", "touch", "verify", "repair", "put", "finish", "copy", "done"}

func (op stepOp) String() string { return opNames[op] }

// String names the step and its volumes, as "copy FROM TO".
func (st step) String() string {
	s := st.op.String()
	if st.from != nil {
		s += " " + st.from.id
	}
	if st.m != nil {
		s += " " + st.m.id
	}
	return s
}

// step is one piece of I/O a placement asks for.
type step struct {
	op   stepOp
	m    *mount // the volume; nil for opFinish and opDone
	from *mount // for opCopy, the volume whose copy matches the body
}

// result is what a step's I/O came to, as a placement needs it.
type result struct {
	err      error // the step's failure (for opFinish the body's), nil on success
	bodyErr  error // the body's failure so far (checkedReader.err): the client's
	bodyRead bool  // whether any of the body has been read (it cannot be read again)
}

// verdict is how a PUT ends: its status, the message sent, and the
// detail for the log.
type verdict struct {
	code int
	msg  string
	err  error
}

// notice is something a placement saw worth logging beyond the request
// line; msg is "" for none.
type notice struct {
	level slog.Level
	msg   string
	err   error
	m     *mount
}

// placePhase is where a placement stands.
type placePhase uint8

const (
	phaseStat    placePhase = iota // which candidates hold a copy
	phaseCompare                   // the body against the first copy that can be read
	phasePut                       // the body to the first candidate that takes it
	phaseFinish                    // the rest of the body
	phaseCopies                    // a copy for each wanted class still without one
	phaseDone
)

// placement decides, from what has happened so far in one PUT, which
// volume to read, write, refresh or copy to next, and how the PUT ends.
// It does no I/O: store carries out each step it asks for and records
// the result. The rules, in the order they apply:
//
//   - The candidates are the writable volumes having a wanted class, in
//     rendezvous order; with none, the PUT is refused (507) before its
//     body is read.
//   - The body is read once. If candidates hold a copy, it is compared
//     with the first whose copy can be opened: equal, that copy is
//     refreshed (touched) and counts unless the touch fails; different
//     and itself corrupt, it is replaced by the body (repaired); different
//     and sound, the body fails its hash or MD5 collided (500).
//   - Otherwise the body goes to the first candidate that takes it; a
//     candidate that refuses before reading any of it is passed over.
//   - Then each further candidate having a wanted class that no volume
//     counted so far has gets a copy: its own, if sound and refreshed,
//     else one copied from the volume the body went to. A failed copy
//     is logged and passed over.
//   - The PUT succeeds if any replica counts; a refresh that failed with
//     nothing else counted is 503.
type placement struct {
	cands  []*mount // writable volumes of a wanted class, in rendezvous order
	has    []bool   // per candidate: Stat found a copy, and no compare found it gone
	got    *progress
	phase  placePhase
	step   step    // the step asked for now
	i      int     // step's candidate
	source int     // the candidate whose copy matches the body, or -1
	errs   []error // why candidates refused the body
	end    verdict // once step.op is opDone
}

// newPlacement returns the plan of a PUT of the block hash, wanting
// classes, on the server's mounts. Its first step is opDone when no
// mount can take the block.
func newPlacement(hash string, mounts []*mount, classes []string) *placement {
	anyWritable, cands := writeCandidates(hash, mounts, classes)
	p := &placement{cands: cands, has: make([]bool, len(cands)), got: newProgress(classes), source: -1}
	switch {
	case !anyWritable:
		p.finish(verdict{http.StatusInsufficientStorage, "insufficient storage: all volumes are read-only", nil})
	case len(cands) == 0:
		p.finish(verdict{http.StatusInsufficientStorage,
			fmt.Sprintf("insufficient storage: no writable volume has storage class %s", strings.Join(classes, " or ")), nil})
	default:
		p.ask(phaseStat, opStat, 0)
	}
	return p
}

// writeCandidates returns whether any mount is writable, and the
// writable mounts having one of classes, in rendezvous order for hash.
func writeCandidates(hash string, mounts []*mount, classes []string) (bool, []*mount) {
	anyWritable := false
	var ms []*mount
	for _, m := range mounts {
		if m.readOnly {
			continue
		}
		anyWritable = true
		if slices.ContainsFunc(classes, m.hasClass) {
			ms = append(ms, m)
		}
	}
	return anyWritable, rendezvous(hash, ms)
}

// next returns the step to carry out now.
func (p *placement) next() step { return p.step }

// verdict returns how the PUT ends, once next is opDone.
func (p *placement) verdict() verdict { return p.end }

// record notes the result of the step next returned, and returns what
// to log of it.
func (p *placement) record(res result) (n notice) {
	i, m := p.i, p.step.m
	switch p.phase {
	case phaseStat:
		p.has[i] = res.err == nil
		if i+1 < len(p.cands) {
			p.ask(phaseStat, opStat, i+1)
		} else {
			p.compareFrom(0)
		}

	case phaseCompare:
		switch p.step.op {
		case opCompare:
			switch {
			case res.err == nil:
				p.source = i
				p.ask(phaseCompare, opTouch, i)
			case res.bodyErr != nil:
				p.finish(bodyFailure(res.bodyErr))
			case errors.Is(res.err, errDiffers):
				p.ask(phaseCompare, opVerify, i)
			case !res.bodyRead:
				// The copy vanished or could not be opened: try the next.
				p.has[i] = false
				p.compareFrom(i + 1)
			default:
				p.finish(verdict{http.StatusServiceUnavailable, "volume unavailable", fmt.Errorf("volume %s: %w", m.id, res.err)})
			}
		case opTouch:
			if res.err != nil {
				// Unrefreshed, the copy may be deleted soon; it counts
				// only once copied to another volume.
				n = notice{slog.LevelWarn, "touching existing block", res.err, m}
			} else {
				p.got.add(m)
			}
			p.ask(phaseFinish, opFinish, -1)
		case opVerify:
			if res.err == nil {
				// A copy that hashes right but differs: the body fails
				// its hash, or MD5 really collided.
				p.ask(phaseCompare, opFinish, i)
			} else {
				p.ask(phaseCompare, opRepair, i)
			}
		case opFinish:
			if res.err != nil {
				p.finish(bodyFailure(res.err))
				break
			}
			n = notice{slog.LevelError, "stored block differs from uploaded data", errCollision, p.cands[i]}
			p.finish(verdict{http.StatusInternalServerError, "hash collision", errCollision})
		case opRepair:
			switch {
			case res.bodyErr != nil:
				p.finish(bodyFailure(res.bodyErr))
			case res.err != nil:
				p.finish(volumeFailure([]error{fmt.Errorf("volume %s: replacing corrupt copy: %w", m.id, res.err)}))
			default:
				n = notice{slog.LevelWarn, "replaced corrupt stored copy with the uploaded data", errChecksum, m}
				p.source = i
				p.got.add(m)
				p.ask(phaseFinish, opFinish, -1)
			}
		}

	case phasePut:
		switch {
		case res.err == nil:
			p.source = i
			p.got.add(m)
			p.ask(phaseFinish, opFinish, -1)
		case res.bodyErr != nil:
			p.finish(bodyFailure(res.bodyErr))
		case res.bodyRead:
			// Part of the body went to a volume that then failed; it
			// cannot be read again for another.
			p.finish(volumeFailure([]error{fmt.Errorf("volume %s: %w", m.id, res.err)}))
		default:
			p.errs = append(p.errs, fmt.Errorf("volume %s: %w", m.id, res.err))
			if i+1 < len(p.cands) {
				p.ask(phasePut, opPut, i+1)
			} else {
				p.finish(volumeFailure(p.errs))
			}
		}

	case phaseFinish:
		if res.err != nil {
			// Only a Volume that stops reading before io.EOF gets here.
			p.finish(bodyFailure(res.err))
			break
		}
		p.copiesFrom(0)

	case phaseCopies:
		switch {
		case p.step.op == opVerify && res.err == nil:
			p.ask(phaseCopies, opTouch, i)
		case p.step.op == opVerify, p.step.op == opTouch && res.err != nil:
			p.ask(phaseCopies, opCopy, i)
		case p.step.op == opCopy && res.err != nil:
			n = notice{slog.LevelWarn, "copying block for storage classes", res.err, m}
			p.copiesFrom(i + 1)
		default: // touched or copied
			p.got.add(m)
			p.copiesFrom(i + 1)
		}
	}
	return n
}

// ask makes op on candidate i (none for i < 0) the next step.
func (p *placement) ask(phase placePhase, op stepOp, i int) {
	p.phase, p.i = phase, i
	p.step = step{op: op}
	if i >= 0 && op != opFinish {
		p.step.m = p.cands[i]
	}
	if op == opCopy {
		p.step.from = p.cands[p.source]
	}
}

// finish ends the placement with v.
func (p *placement) finish(v verdict) {
	p.phase, p.step, p.end = phaseDone, step{op: opDone}, v
}

// compareFrom compares the body with the copy of the first candidate
// from i on that holds one; with none, it writes the body.
func (p *placement) compareFrom(i int) {
	for ; i < len(p.cands); i++ {
		if p.has[i] {
			p.ask(phaseCompare, opCompare, i)
			return
		}
	}
	p.ask(phasePut, opPut, 0)
}

// copiesFrom asks for a copy on the first candidate from i on that has
// a class still wanted (its own copy, checked and refreshed, when it
// holds one); with none, the placement ends.
func (p *placement) copiesFrom(i int) {
	for ; i < len(p.cands); i++ {
		m := p.cands[i]
		if i == p.source || p.got.holds(m) || !p.got.wants(m) {
			continue
		}
		if p.has[i] {
			p.ask(phaseCopies, opVerify, i)
		} else {
			p.ask(phaseCopies, opCopy, i)
		}
		return
	}
	if p.got.replicas == 0 {
		p.finish(verdict{http.StatusServiceUnavailable, "volume unavailable", errors.New("could not refresh or copy existing block")})
		return
	}
	p.finish(verdict{code: http.StatusOK})
}

// bodyFailure is the verdict for a checkedReader error. The messages
// hold sizes and hashes only, never credentials.
func bodyFailure(err error) verdict {
	if slow, _ := isSlowUpload(err); slow {
		return verdict{http.StatusRequestTimeout, err.Error(), err}
	}
	if errors.Is(err, errTooLarge) {
		return verdict{http.StatusRequestEntityTooLarge, err.Error(), err}
	}
	return verdict{http.StatusBadRequest, err.Error(), err}
}

// volumeFailure is the verdict for the errors of volumes that could not
// take a block: 507 if they were all full or read-only (retrying will
// not help); 503 "volume busy" if some had room but for uploads in
// flight (which may yet fail); else 503 "volume unavailable" (a volume
// is failing, perhaps briefly). fail sends every 503 with Retry-After.
func volumeFailure(errs []error) verdict {
	busy := false
	for _, err := range errs {
		switch {
		case errors.Is(err, ErrBusy):
			busy = true
		case !errors.Is(err, ErrFull) && !errors.Is(err, ErrReadOnly):
			return verdict{http.StatusServiceUnavailable, "volume unavailable", errors.Join(errs...)}
		}
	}
	if busy {
		return verdict{http.StatusServiceUnavailable, "volume busy: its free room is promised to uploads in flight; try again shortly", errors.Join(errs...)}
	}
	return verdict{http.StatusInsufficientStorage, "insufficient storage", errors.Join(errs...)}
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
