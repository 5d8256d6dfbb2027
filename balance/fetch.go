package balance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// Client reads inventories from, and sends lists to, block servers with
// the system token.
type Client struct {
	HTTP  *http.Client // nil means http.DefaultClient
	Token string       // the servers' system (SystemRootToken) token
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// maxIndexLine bounds one index line: "hash+size mtime" is under 80 bytes.
const maxIndexLine = 1024

// maxMountsBody bounds a /mounts answer.
const maxMountsBody = 1 << 20

// fetchers bounds the servers and volumes read at once.
const fetchers = 16

// Fetch reads every server's mounts, then every volume's index once: a
// volume that several servers list is read from the first of them, or
// if that fails, the next. A server that cannot be read, or a volume
// whose index ends early through every server listing it, leaves those
// servers marked incomplete (and the error returned, joined with the
// others); what was read still counts. A server without GET /mounts (an
// older keepstore, or ours before the management API) is read through
// GET /index as one mount with uuid "", which trash lists take to mean
// every mount.
func (c *Client) Fetch(ctx context.Context, svcs []keepclient.Service) (Inventory, error) {
	inv := Inventory{Servers: make([]Server, len(svcs)), Copies: make(map[string][]Copy)}
	errs := make([]error, len(svcs))
	var g errgroup.Group
	g.SetLimit(fetchers)
	for i, svc := range svcs {
		g.Go(func() error {
			inv.Servers[i] = Server{Service: svc, Complete: true}
			mounts, missing, err := c.mounts(ctx, svc)
			if errors.Is(err, errNoMounts) {
				mounts = []Mount{{AllowWrite: !svc.ReadOnly, AllowTrash: !svc.ReadOnly, Replication: 1}}
				err = nil
			}
			if err == nil && missing > 0 {
				err = fmt.Errorf("%d volume(s) missing (see its /_status): their blocks are unknown", missing)
			}
			if err != nil {
				inv.Servers[i].Complete = false
				errs[i] = fmt.Errorf("%s: %w", svc, err)
			}
			inv.Servers[i].Mounts = mounts
			return nil
		})
	}
	g.Wait()

	// Each volume once, through the servers that list it in turn.
	vols := groupVolumes(inv.Servers).vols
	var mu sync.Mutex // guards inv.Copies, inv.Servers[].Complete and errs
	for _, v := range vols {
		g.Go(func() error {
			var tries []error
			for _, si := range v.servers {
				svc := svcs[si]
				path := "/index"
				if v.uuid != "" {
					path = "/mounts/" + url.PathEscape(v.uuid) + "/blocks"
				}
				err := c.index(ctx, svc.URL()+path, func(hash string, size, mtime int64) {
					mu.Lock()
					inv.Copies[hash] = append(inv.Copies[hash], Copy{Server: si, Mount: v.uuid, Size: size, Mtime: mtime})
					mu.Unlock()
				})
				if err == nil {
					if len(tries) > 0 {
						mu.Lock()
						inv.Warnings = append(inv.Warnings, tries...)
						mu.Unlock()
					}
					return nil
				}
				tries = append(tries, fmt.Errorf("%s: index of mount %q: %w", svc, v.uuid, err))
				if ctx.Err() != nil {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, si := range v.servers {
				inv.Servers[si].Complete = false
			}
			errs = append(errs, tries...)
			return nil
		})
	}
	g.Wait()
	return inv, errors.Join(errs...)
}

var errNoMounts = errors.New("no /mounts")

func (c *Client) get(ctx context.Context, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	return c.http().Do(req)
}

// mounts reads a server's GET /mounts, and how many volumes it says are
// missing from the list (protocol.HeaderVolumesMissing).
func (c *Client) mounts(ctx context.Context, svc keepclient.Service) ([]Mount, int, error) {
	resp, err := c.get(ctx, svc.URL()+"/mounts")
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMountsBody+1))
	switch {
	case err != nil:
		return nil, 0, err
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest:
		return nil, 0, errNoMounts
	case resp.StatusCode != http.StatusOK:
		return nil, 0, fmt.Errorf("GET /mounts: %s: %s", resp.Status, firstLine(body))
	case len(body) > maxMountsBody:
		return nil, 0, fmt.Errorf("GET /mounts: answer over %d bytes", maxMountsBody)
	}
	var ms []Mount
	if err := json.Unmarshal(body, &ms); err != nil {
		return nil, 0, fmt.Errorf("GET /mounts: %w", err)
	}
	for _, m := range ms {
		if m.UUID == "" {
			return nil, 0, errors.New("GET /mounts: a mount without a uuid")
		}
	}
	missing := 0
	if h := resp.Header.Get(protocol.HeaderVolumesMissing); h != "" {
		// Anything but a plain count is taken as "some": the safe
		// reading withholds trash.
		if n, err := strconv.Atoi(h); err == nil && n >= 0 {
			missing = n
		} else {
			missing = 1
		}
	}
	return ms, missing, nil
}

// index reads one index, calling add for each line. The index must end
// with an empty line; without it, it was cut short.
func (c *Client) index(ctx context.Context, u string, add func(hash string, size, mtime int64)) error {
	resp, err := c.get(ctx, u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, firstLine(text))
	}
	return parseIndex(resp.Body, add)
}

// parseIndex reads "hash+size mtime_ns" lines ending with an empty line.
func parseIndex(r io.Reader, add func(hash string, size, mtime int64)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxIndexLine)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			if sc.Scan() {
				return fmt.Errorf("line %d: data after the final empty line", n+1)
			}
			return sc.Err()
		}
		loc, mtime, ok := strings.Cut(line, " ")
		l, err := locator.Parse(loc)
		if !ok || err != nil || l.Size < 0 {
			return fmt.Errorf("line %d: not \"hash+size mtime\": %q", n, short(line))
		}
		t, err := strconv.ParseInt(mtime, 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: bad mtime %q", n, short(mtime))
		}
		add(l.Hash, l.Size, t)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	return errors.New("incomplete: no final empty line")
}

// Send replaces each server's pull and trash lists with the plan's. Trash
// is sent only when the plan has it (see Plan.TrashWithheld). Each list
// is written as it is sent (protocol.EncodeList), so that sending a
// list of millions of items takes no memory beyond the plan's own.
func (c *Client) Send(ctx context.Context, p *Plan) error {
	var errs []error
	for u, items := range p.Pulls {
		errs = append(errs, c.put(ctx, u+"/pull", func(w io.Writer) error { return protocol.EncodeList(w, items) }))
	}
	for u, items := range p.Trash {
		errs = append(errs, c.put(ctx, u+"/trash", func(w io.Writer) error { return protocol.EncodeList(w, items) }))
	}
	return errors.Join(errs...)
}

// put sends PUT u with a JSON body that write writes as the request
// goes (chunked), through a pipe; write may be called again if the
// request is retried on another connection.
func (c *Client) put(ctx context.Context, u string, write func(io.Writer) error) error {
	var (
		mu      sync.Mutex
		readers []*io.PipeReader
		writers sync.WaitGroup
	)
	body := func() io.ReadCloser {
		pr, pw := io.Pipe()
		mu.Lock()
		readers = append(readers, pr)
		mu.Unlock()
		writers.Add(1)
		go func() {
			defer writers.Done()
			pw.CloseWithError(write(pw))
		}()
		return pr
	}
	// The transport closes a body it no longer reads, perhaps after Do
	// returns; closing them here ends every writer before put returns.
	defer func() {
		mu.Lock()
		for _, r := range readers {
			r.Close()
		}
		mu.Unlock()
		writers.Wait()
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, body())
	if err != nil {
		return err
	}
	req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		text, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("PUT %s: %s: %s", u, resp.Status, firstLine(text))
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return short(s)
}

func short(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
