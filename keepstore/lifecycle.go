package keepstore

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// HeaderVolumesMissing is protocol.HeaderVolumesMissing: on GET /mounts,
// the number of configured volumes left out because they are missing.
const HeaderVolumesMissing = protocol.HeaderVolumesMissing

// maxListBytes bounds the body of PUT /pull and PUT /trash: some four
// million items, more than keep-balance sends a server in one run.
var maxListBytes int64 = 512 << 20

// handleMounts lists the volumes (GET /mounts), as keep-balance reads
// them.
func (s *Server) handleMounts(w *response, _ *http.Request, _, _ string) {
	host, _ := os.Hostname()
	// A missing volume is left out, so that a keep-balance (ours or
	// Arvados') counts none of its blocks, rather than reading its
	// index, failing, and stopping; the header tells ours the server's
	// inventory is incomplete, so that it withholds trash.
	if len(s.missing) > 0 {
		w.Header().Set(HeaderVolumesMissing, strconv.Itoa(len(s.missing)))
	}
	out := make([]protocol.Mount, 0, len(s.mounts))
	for _, m := range s.mounts {
		classes := make(map[string]bool, len(m.classes))
		for _, c := range m.classes {
			classes[c] = true
		}
		out = append(out, protocol.Mount{
			UUID:           m.id,
			DeviceID:       deviceID(m, host),
			ReadOnly:       m.readOnly,
			AllowWrite:     !m.readOnly,
			AllowTrash:     !m.readOnly && s.trashOn,
			Replication:    m.replication,
			StorageClasses: classes,
		})
	}
	writeJSON(w, out)
}

// deviceID names the storage under a mount, for keep-balance to tell one
// device listed under two uuids: what the volume says if it knows (an S3
// bucket names itself the same on every host), else host:path.
func deviceID(m *mount, host string) string {
	if d, ok := m.vol.(DeviceIdentifier); ok {
		return d.DeviceID()
	}
	return host + ":" + m.path
}

// handleMountIndex serves GET /mounts/UUID/blocks[/PREFIX][?prefix=P]:
// the index of one volume.
func (s *Server) handleMountIndex(w *response, r *http.Request, rest, _ string) {
	uuid, sub, _ := strings.Cut(rest, "/")
	prefix, ok := strings.CutPrefix(sub, "blocks")
	if !ok || (prefix != "" && !strings.HasPrefix(prefix, "/")) {
		w.fail(http.StatusBadRequest, "Bad Request", nil)
		return
	}
	m := s.mount(uuid)
	if m == nil {
		for _, mv := range s.missing {
			if mv.id == uuid && uuid != "" {
				w.fail(http.StatusServiceUnavailable, fmt.Sprintf("mount %q is missing on this server: %v", uuid, mv.err), nil)
				return
			}
		}
		w.fail(http.StatusNotFound, fmt.Sprintf("no mount %q on this server", uuid), nil)
		return
	}
	s.writeIndex(w, r, strings.TrimPrefix(prefix, "/"), []*mount{m})
}

// mount returns the mount with the given uuid, or nil.
func (s *Server) mount(uuid string) *mount {
	for _, m := range s.mounts {
		if m.id == uuid {
			return m
		}
	}
	return nil
}

// handlePullList replaces the pull list (PUT /pull). It reads the list
// item by item and keeps it compactly (pullQueue), so that a list of
// millions of items costs a few dozen bytes an item.
func (s *Server) handlePullList(w *response, r *http.Request, _, _ string) {
	q := &pullQueue{}
	n, ok := readList(w, r, "pull", func(it protocol.PullItem) error {
		l, err := checkPullItem(it)
		if err == nil {
			q.add(it, l)
		}
		return err
	})
	if !ok {
		return
	}
	s.pulls.replaceQueue(q.done())
	fmt.Fprintf(w, "Received %d pull requests\n", n)
}

// handleTrashList replaces the trash list (PUT /trash), read item by
// item and kept compactly (trashQueue).
func (s *Server) handleTrashList(w *response, r *http.Request, _, _ string) {
	q := &trashQueue{}
	n, ok := readList(w, r, "trash", func(it protocol.TrashItem) error {
		l, err := locator.Parse(it.Locator)
		if err == nil {
			q.add(it, l)
		}
		return err
	})
	if !ok {
		return
	}
	s.trashes.replaceQueue(q.done())
	fmt.Fprintf(w, "Received %d trash requests\n", n)
}

// listReport returns the handler of GET /pull or GET /trash: what
// became of the items of the current list, as report says (a route of
// ours; Arvados keepstore has none).
func (s *Server) listReport(report func() protocol.ListReport) handler {
	return func(w *response, _ *http.Request, _, _ string) {
		writeJSON(w, report())
	}
}

// readList reads a JSON list of items from the request body one item
// at a time, passing each to add, and returns how many there were. On
// a body over maxListBytes it answers 413; on one that is not a JSON
// array of items, 400; then on the first item add refuses, 400 naming
// it (the JSON is read to its end first, so that a malformed or
// oversized list is reported as such wherever its bad item is).
func readList[T any](w *response, r *http.Request, what string, add func(T) error) (int, bool) {
	body := http.MaxBytesReader(w, r.Body, maxListBytes)
	n := 0
	var itemErr error
	err := protocol.DecodeList(body, func(it T) error {
		if itemErr == nil {
			if err := add(it); err != nil {
				itemErr = fmt.Errorf("%s list item %d: %v", what, n, err)
			}
		}
		n++
		return nil
	})
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		w.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("list longer than %d bytes", int64(maxListBytes)), nil)
		return 0, false
	case err != nil:
		w.fail(http.StatusBadRequest, "list is not a JSON array of items: "+err.Error(), nil)
		return 0, false
	case itemErr != nil:
		w.fail(http.StatusBadRequest, itemErr.Error(), nil)
		return 0, false
	}
	return n, true
}

// checkPullItem checks what a pull needs: a locator with a size, and at
// least one http or https server to fetch from. It returns the parsed
// locator.
func checkPullItem(it protocol.PullItem) (locator.Locator, error) {
	loc, err := locator.Parse(it.Locator)
	if err != nil {
		return loc, err
	}
	if loc.Size < 0 {
		return loc, fmt.Errorf("locator %q has no size", it.Locator)
	}
	if len(it.Servers) == 0 {
		return loc, errors.New("no servers to pull from")
	}
	for _, srv := range it.Servers {
		u, err := url.Parse(srv)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return loc, fmt.Errorf("server %q is not an http or https URL", srv)
		}
	}
	return loc, nil
}

// handleTouch sets the block's modification time to now on every
// writable volume holding it (TOUCH /LOCATOR).
func (s *Server) handleTouch(w *response, r *http.Request, path, _ string) {
	loc, ok := parseLocator(w, path)
	if !ok {
		return
	}
	var errs []error
	touched := 0
	for _, m := range s.mounts {
		if m.readOnly {
			continue
		}
		switch err := m.vol.Touch(r.Context(), loc.Hash); {
		case err == nil:
			touched++
		case !errors.Is(err, ErrNotFound):
			errs = append(errs, fmt.Errorf("volume %s: %w", m.id, err))
		}
	}
	switch {
	case touched > 0:
		fmt.Fprintf(w, "touched %d copies\n", touched)
	case len(errs) > 0:
		w.fail(http.StatusServiceUnavailable, "volume unavailable", errors.Join(errs...))
	default:
		w.fail(http.StatusNotFound, "Not Found", nil)
	}
}

// handleUntrash restores the block from the trash of every writable
// volume that has a copy there (PUT /untrash/LOCATOR).
func (s *Server) handleUntrash(w *response, r *http.Request, path, _ string) {
	loc, ok := parseLocator(w, path)
	if !ok {
		return
	}
	var restored []string
	var errs []error
	for _, m := range s.mounts {
		if m.readOnly {
			continue
		}
		switch err := m.vol.Untrash(r.Context(), loc.Hash); {
		case err == nil:
			restored = append(restored, m.id)
		case !errors.Is(err, ErrNotFound):
			errs = append(errs, fmt.Errorf("volume %s: %w", m.id, err))
		}
	}
	switch {
	case len(restored) > 0:
		fmt.Fprintf(w, "Successfully untrashed on: %s\n", strings.Join(restored, ", "))
	case len(errs) > 0:
		w.fail(http.StatusServiceUnavailable, "volume unavailable", errors.Join(errs...))
	default:
		w.fail(http.StatusNotFound, "Not Found: no trashed copy", nil)
	}
}

// DeleteResult is the JSON answer to DELETE /LOCATOR.
type DeleteResult struct {
	// CopiesDeleted is the number of copies moved to the trash.
	CopiesDeleted int `json:"copies_deleted"`
	// CopiesFailed is the number of copies that could not be trashed.
	CopiesFailed int `json:"copies_failed"`
	// CopiesTooNew is the number of copies left alone because they are
	// newer than the signing TTL: a signature given out for them may
	// still be used.
	CopiesTooNew int `json:"copies_too_new"`
}

// handleDelete trashes the block's copies older than the signing TTL on
// every writable volume (DELETE /LOCATOR): 405 with trash disabled, 404
// if no writable volume has it, else 200 with a DeleteResult.
func (s *Server) handleDelete(w *response, r *http.Request, path, _ string) {
	if !s.trashOn {
		w.fail(http.StatusMethodNotAllowed, "Method Not Allowed: trash is disabled on this server", nil)
		return
	}
	loc, ok := parseLocator(w, path)
	if !ok {
		return
	}
	now := time.Now()
	var res DeleteResult
	found := false
	var errs []error
	for _, m := range s.mounts {
		if m.readOnly {
			continue
		}
		st, err := m.vol.Stat(r.Context(), loc.Hash)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		found = true
		switch {
		case err != nil:
		case now.Sub(st.Mtime) < s.signer.TTL:
			res.CopiesTooNew++
			continue
		default:
			err = m.vol.Trash(r.Context(), loc.Hash, st.Mtime, s.trashDeadline(now))
		}
		if err != nil {
			res.CopiesFailed++
			errs = append(errs, fmt.Errorf("volume %s: %w", m.id, err))
			continue
		}
		res.CopiesDeleted++
	}
	if !found {
		w.fail(http.StatusNotFound, "Not Found", nil)
		return
	}
	w.err = errors.Join(errs...)
	writeJSON(w, res)
}

// trashDeadline returns when a block trashed at now is deleted.
func (s *Server) trashDeadline(now time.Time) time.Time {
	return now.Add(s.trashLifetime)
}
