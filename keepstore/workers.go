package keepstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
)

// startWorkers starts the trash and pull workers and the trash sweep;
// Close stops them.
func (s *Server) startWorkers() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopWorkers = cancel
	work := func(n int, f func()) {
		for range n {
			s.workers.Add(1)
			go func() {
				defer s.workers.Done()
				f()
			}()
		}
	}
	work(s.trashConcurrency, func() {
		for {
			it, t, ok := s.trashes.next()
			if !ok {
				return
			}
			o, err := s.trashItem(ctx, it, time.Now())
			// Counted before the list records it finished, so that
			// whoever sees it finished in the status sees it counted.
			s.metrics.workItem("trash", o)
			s.trashes.finish(it, t, o, err)
		}
	})
	work(s.pullConcurrency, func() {
		for {
			it, t, ok := s.pulls.next()
			if !ok {
				return
			}
			o, err := s.pullItem(ctx, it)
			s.metrics.workItem("pull", o)
			s.pulls.finish(it, t, o, err)
		}
	})
	if s.trashInterval > 0 {
		work(1, func() {
			t := time.NewTicker(s.trashInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					s.EmptyTrash(ctx, now)
				}
			}
		})
	}
}

// stop ends the workers and waits for them.
func (s *Server) stop() {
	s.stopWorkers()
	s.trashes.close()
	s.pulls.close()
	s.workers.Wait()
}

// EmptyTrash deletes, on every writable volume, the trashed blocks
// whose deadline is before now, and the debris of interrupted writes.
// The server calls it every TrashCheckInterval; it returns the number
// of blocks deleted.
func (s *Server) EmptyTrash(ctx context.Context, now time.Time) int {
	total := 0
	for _, m := range s.mounts {
		if m.readOnly {
			continue
		}
		n, err := m.vol.EmptyTrash(ctx, now)
		total += n
		s.metrics.trashEmptied.Add(float64(n))
		if err != nil {
			s.log.Error("emptying trash", slog.String("volume", m.id), slog.String("error", err.Error()))
		} else if n > 0 {
			s.log.Info("emptied trash", slog.String("volume", m.id), slog.Int("blocks", n))
		}
	}
	return total
}

// trashItem carries out one trash list item: it trashes the block on
// the named mount (every writable one, if none is named) where its
// modification time is still the item's, unless that is newer than the
// signing TTL.
func (s *Server) trashItem(ctx context.Context, it protocol.TrashItem, now time.Time) (outcome, error) {
	loc, err := locator.Parse(it.Locator)
	if err != nil {
		return failed, err // checked when the list arrived
	}
	skip := func(why string) (outcome, error) {
		s.log.Info("trash list item skipped", slog.String("hash", loc.Hash), slog.String("mount", it.MountUUID), slog.String("reason", why))
		return skipped, nil
	}
	if !s.trashOn {
		return skip("trash is disabled on this server")
	}
	mtime := time.Unix(0, it.BlockMtime)
	if now.Sub(mtime) < s.signer.TTL {
		return skip("block_mtime is newer than the signing TTL")
	}
	mounts, why := s.itemMounts(it.MountUUID)
	if mounts == nil {
		return skip(why)
	}
	trashed, changed := 0, 0
	var errs []error
	for _, m := range mounts {
		switch err := m.vol.Trash(ctx, loc.Hash, mtime, s.trashDeadline(now)); {
		case err == nil:
			trashed++
		case errors.Is(err, ErrChanged):
			changed++
		case errors.Is(err, ErrNotFound):
		default:
			errs = append(errs, fmt.Errorf("volume %s: %w", m.id, err))
		}
	}
	switch {
	case len(errs) > 0:
		err := fmt.Errorf("trashing %s: %w", loc.Hash, errors.Join(errs...))
		s.log.Error("trash list item failed", slog.String("error", err.Error()))
		return failed, err
	case trashed > 0:
		return done, nil
	case changed > 0:
		return skip("the stored copy's modification time is not block_mtime")
	default:
		return skip("no such block on the mount")
	}
}

// itemMounts returns the writable mounts a list item names: the one
// with that uuid, or all of them. Nil means none, and why.
func (s *Server) itemMounts(uuid string) ([]*mount, string) {
	if uuid != "" {
		m := s.mount(uuid)
		switch {
		case m == nil:
			return nil, "no such mount on this server"
		case m.readOnly:
			return nil, "mount is read-only"
		}
		return []*mount{m}, ""
	}
	var out []*mount
	for _, m := range s.mounts {
		if !m.readOnly {
			out = append(out, m)
		}
	}
	if out == nil {
		return nil, "every mount is read-only"
	}
	return out, ""
}

// pullItem carries out one pull list item: it fetches the block from
// the first of the item's servers that has it whole, checking its hash,
// and stores it on the named mount, or on the first writable one in the
// block's order.
func (s *Server) pullItem(ctx context.Context, it protocol.PullItem) (outcome, error) {
	loc, err := locator.Parse(it.Locator)
	if err != nil {
		return failed, err // checked when the list arrived
	}
	mounts, why := s.itemMounts(it.MountUUID)
	if mounts == nil {
		s.log.Info("pull list item skipped", slog.String("hash", loc.Hash), slog.String("mount", it.MountUUID), slog.String("reason", why))
		return skipped, nil
	}
	target := rendezvous(loc.Hash, mounts)[0]
	if _, err := target.vol.Stat(ctx, loc.Hash); err == nil && verifyCopy(ctx, target, loc.Hash) == nil {
		if err := target.vol.Touch(ctx, loc.Hash); err == nil {
			return skipped, nil // already there, now fresh
		}
	}
	var errs []error
	for _, srv := range it.Servers {
		err := s.pullFrom(ctx, srv, loc, target)
		if err == nil {
			s.log.Info("pulled block", slog.String("hash", loc.Hash), slog.String("from", srv), slog.String("volume", target.id))
			return done, nil
		}
		errs = append(errs, fmt.Errorf("from %s: %w", srv, err))
		if ctx.Err() != nil {
			break
		}
	}
	// One line, for the log and for balance's report of the failure.
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = strings.ReplaceAll(e.Error(), "\n", " ")
	}
	err = fmt.Errorf("pulling %s: %s", loc.Hash, strings.Join(msgs, "; "))
	s.log.Error("pull list item failed", slog.String("error", err.Error()))
	return failed, err
}

// pullFrom fetches loc from the server at base and writes it to m. The
// request carries the system token and, when the server signs, a
// locator signed for it, so that a source requiring signatures serves
// it (as keepstore's pull worker does).
func (s *Server) pullFrom(ctx context.Context, base string, loc locator.Locator, m *mount) error {
	bare := locator.Locator{Hash: loc.Hash, Size: loc.Size}
	if len(s.signer.Key) > 0 {
		bare = s.signer.Sign(bare, s.systemToken, time.Now().Add(s.signer.TTL))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/"+bare.String(), nil)
	if err != nil {
		return err
	}
	if s.systemToken != "" {
		req.Header.Set("Authorization", "Bearer "+s.systemToken)
	}
	req.Header.Set(protocol.HeaderRequestID, protocol.NewRequestID())
	resp, err := s.pullClient.Do(req)
	if err != nil {
		// The *url.Error would add the URL, whose locator carries a
		// signature: never in a log or a report. The caller names the
		// server.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	body := newCheckedReader(resp.Body, loc.Hash, loc.Size, s.maxBlock)
	if err := m.vol.Put(ctx, loc.Hash, body, loc.Size); err != nil {
		if body.err != nil {
			return body.err
		}
		return fmt.Errorf("volume %s: %w", m.id, err)
	}
	return body.finish()
}
