package balance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// ListReport is what became of a server's current pull or trash list
// (GET /pull, GET /trash: routes of our server; Arvados keepstore has
// none).
type ListReport = protocol.ListReport

// Report is one server's report on its current pull list.
type Report struct {
	Service keepclient.Service
	ListReport
	// Err is why there is no report: the server does not give one (an
	// Arvados keepstore), or could not be asked.
	Err error
}

// maxReportBody bounds a report: MaxReportedFailures items of a few
// hundred bytes each.
const maxReportBody = 4 << 20

// PullReports asks every server what became of its current pull list.
func (c *Client) PullReports(ctx context.Context, svcs []keepclient.Service) []Report {
	out := make([]Report, len(svcs))
	var g errgroup.Group
	g.SetLimit(fetchers)
	for i, svc := range svcs {
		g.Go(func() error {
			out[i] = Report{Service: svc}
			out[i].ListReport, out[i].Err = c.report(ctx, svc.URL()+"/pull")
			return nil
		})
	}
	g.Wait()
	return out
}

func (c *Client) report(ctx context.Context, u string) (ListReport, error) {
	var r ListReport
	resp, err := c.get(ctx, u)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReportBody+1))
	switch {
	case err != nil:
		return r, err
	case resp.StatusCode != http.StatusOK:
		return r, fmt.Errorf("GET %s: %s: %s", u, resp.Status, firstLine(body))
	case len(body) > maxReportBody:
		return r, fmt.Errorf("GET %s: answer over %d bytes", u, maxReportBody)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return ListReport{}, fmt.Errorf("GET %s: %w", u, err)
	}
	if r.Items < 0 || r.Queued < 0 || r.InProgress < 0 || r.Done < 0 || r.Skipped < 0 || r.Failed < 0 || len(r.Failures) > protocol.MaxReportedFailures {
		return ListReport{}, fmt.Errorf("GET %s: a report with impossible counts", u)
	}
	return r, nil
}

// WaitPulls asks the servers what became of their pull lists until none
// has an item queued or in progress, calling progress with the totals
// after each look, and returns their last reports. Servers that give no
// report are not waited for.
func (c *Client) WaitPulls(ctx context.Context, svcs []keepclient.Service, progress func(queued, working int)) ([]Report, error) {
	const poll = 500 * time.Millisecond
	for {
		reports := c.PullReports(ctx, svcs)
		queued, working := 0, 0
		for _, r := range reports {
			if r.Err == nil {
				queued += r.Queued
				working += r.InProgress
			}
		}
		if queued+working == 0 {
			return reports, nil
		}
		progress(queued, working)
		select {
		case <-ctx.Done():
			return reports, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// FailedPull is a pull a server reported failed, of a block that is
// still short of its wanted copies.
type FailedPull struct {
	Locator string
	Server  keepclient.Service
	Error   string
}

// StillShort returns the failed pulls of the reports whose block the
// plan finds under-replicated or lost: the repairs that did not happen.
// Reports with an error are passed over.
func StillShort(p *Plan, reports []Report) []FailedPull {
	var out []FailedPull
	for _, r := range reports {
		if r.Err != nil {
			continue
		}
		for _, f := range r.Failures {
			l, err := locator.Parse(f.Locator)
			if err != nil {
				continue // not ours to explain
			}
			if st, ok := p.Block(l.Hash); ok && (st.Class == Under || st.Class == Lost) {
				out = append(out, FailedPull{Locator: locator.Locator{Hash: l.Hash, Size: l.Size}.String(), Server: r.Service, Error: f.Error})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Locator < out[j].Locator })
	return out
}
