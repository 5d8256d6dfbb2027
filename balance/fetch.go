package balance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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

// Fetch reads every server's mounts into inv, then every volume's index
// once: a volume that several servers list is read from the first of
// them, or if that fails, the next. A server that cannot be read, or a
// volume whose index ends early through every server listing it, leaves
// those servers marked incomplete (and the error returned, joined with
// the others); what was read still counts. A server without GET /mounts
// (an older keepstore, or ours before the management API) is read
// through GET /index as one mount with uuid "", which trash lists take
// to mean every mount. inv must have no servers yet; its live set may
// be read before or after.
func (c *Client) Fetch(ctx context.Context, inv *Inventory, svcs []keepclient.Service) error {
	if inv.Servers != nil || inv.l != nil {
		return errors.New("balance.Fetch: the inventory already has servers")
	}
	inv.Servers = make([]Server, len(svcs))
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

	// Each volume once, through the servers that list it in turn, all
	// at once (up to fetchers).
	r := &indexReader{c: c, inv: inv, errs: errs}
	for v := range inv.layout().vols {
		g.Go(func() error { r.volume(ctx, svcs, v); return nil })
	}
	g.Wait()
	return errors.Join(r.errs...)
}

// indexReader reads volumes' indexes into an inventory.
type indexReader struct {
	c   *Client
	inv *Inventory

	mu   sync.Mutex // guards the inventory's store and Complete flags, and errs
	errs []error
}

// indexBatch is how many copies an index reader parses before taking
// the inventory's lock to add them.
const indexBatch = 4096

// volume reads volume v's index through the servers listing it in turn.
func (r *indexReader) volume(ctx context.Context, svcs []keepclient.Service, v int) {
	vol := r.inv.l.vols[v]
	var tries []error
	batch := make([]entry, 0, indexBatch)
	for _, si := range vol.servers {
		svc := svcs[si]
		path := "/index"
		if vol.uuid != "" {
			path = "/mounts/" + url.PathEscape(vol.uuid) + "/blocks"
		}
		err := r.c.index(ctx, svc.URL()+path, func(h hash, size, mtime int64) error {
			if batch = append(batch, entry{h, size, mtime}); len(batch) == cap(batch) {
				return r.add(v, &batch)
			}
			return nil
		})
		// What was read counts, even of an index cut short.
		if aerr := r.add(v, &batch); err == nil {
			err = aerr
		}
		if err == nil {
			if len(tries) > 0 {
				r.mu.Lock()
				r.inv.Warnings = append(r.inv.Warnings, tries...)
				r.mu.Unlock()
			}
			return
		}
		tries = append(tries, fmt.Errorf("%s: index of mount %q: %w", svc, vol.uuid, err))
		if ctx.Err() != nil {
			break
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, si := range vol.servers {
		r.inv.Servers[si].Complete = false
	}
	r.errs = append(r.errs, tries...)
}

// add adds a batch of copies on volume v, and empties it.
func (r *indexReader) add(v int, batch *[]entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.inv.s.addCopies(*batch, v)
	*batch = (*batch)[:0]
	return err
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
func (c *Client) index(ctx context.Context, u string, add func(h hash, size, mtime int64) error) error {
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

// parseIndex reads "hash+size mtime_ns" lines ending with an empty line,
// without allocating for each.
func parseIndex(r io.Reader, add func(h hash, size, mtime int64) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull || len(line) > maxIndexLine:
			return fmt.Errorf("line %d: too long (over %d bytes)", n, maxIndexLine)
		case err == io.EOF:
			return errors.New("incomplete: no final empty line")
		case err != nil:
			return fmt.Errorf("line %d: %w", n, err)
		}
		line = line[:len(line)-1]
		if len(line) == 0 {
			if _, err := br.ReadByte(); err != io.EOF {
				if err != nil {
					return fmt.Errorf("after line %d: %w", n, err)
				}
				return fmt.Errorf("line %d: data after the final empty line", n+1)
			}
			return nil
		}
		h, size, mtime, err := parseIndexLine(line)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if err := add(h, size, mtime); err != nil {
			return err
		}
	}
}

// parseIndexLine parses "hash+size[+hints] mtime".
func parseIndexLine(line []byte) (h hash, size, mtime int64, err error) {
	sp := bytes.IndexByte(line, ' ')
	loc, t := line, []byte(nil)
	if sp >= 0 {
		loc, t = line[:sp], line[sp+1:]
	}
	h, ok := parseHash(loc[:min(len(loc), 32)])
	size, rest, sizeOK := parseDigits(loc[min(len(loc), 33):])
	if !ok || sp < 0 || len(loc) < 34 || loc[32] != '+' || !sizeOK || size > locator.MaxBlockSize {
		return h, 0, 0, fmt.Errorf("not \"hash+size mtime\": %q", short(string(line)))
	}
	if len(rest) > 0 {
		if _, err := locator.Parse(string(loc)); err != nil || rest[0] != '+' {
			return h, 0, 0, fmt.Errorf("not \"hash+size mtime\": %q", short(string(line)))
		}
	}
	neg := len(t) > 0 && t[0] == '-'
	if neg {
		t = t[1:]
	}
	mtime, rest, ok = parseDigits(t)
	if !ok || len(rest) > 0 {
		return h, 0, 0, fmt.Errorf("bad mtime %q", short(string(line[sp+1:])))
	}
	if neg {
		mtime = -mtime
	}
	return h, size, mtime, nil
}

// parseDigits reads a non-negative decimal int64 at the start of b.
func parseDigits(b []byte) (n int64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := int64(b[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, b, false
		}
		n = n*10 + d
	}
	return n, b[i:], i > 0
}

// Send replaces each server's pull and trash lists with the plan's. Trash
// is sent only when the plan has it (see Plan.TrashWithheld). Each list
// is written as it is sent (protocol.EncodeList), so that sending a
// list of millions of items takes no memory beyond the plan's own.
func (c *Client) Send(ctx context.Context, p *Plan) error {
	var errs []error
	for i, srv := range p.inv.Servers {
		if !p.HasLists(i) {
			continue
		}
		u := srv.Service.URL()
		errs = append(errs, c.put(ctx, u+"/pull", func(w io.Writer) error { return protocol.EncodeSeq(w, p.Pulls(i)) }))
		if !p.TrashWithheld {
			errs = append(errs, c.put(ctx, u+"/trash", func(w io.Writer) error { return protocol.EncodeSeq(w, p.Trash(i)) }))
		}
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
