// Package arvapi reads what keep needs from an Arvados API server: the
// collections (trashed ones and old versions included), whose manifests
// and wanted replication make the live set that keep balance keeps. Answers are untrusted input: pages are
// bounded, must advance, and a malformed one is an error, never a
// shorter list.
package arvapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/keepproject/keep/internal/protocol"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// PageSize is the number of collections asked for per request.
const PageSize = 100

// maxPageBytes bounds one page of collections: a hundred manifests of
// a few megabytes each.
const maxPageBytes = 1 << 30

// Client talks to one API server.
type Client struct {
	host  string // host[:port]
	token string
	http  *http.Client
}

// New returns a client for the API server at host (host or host:port,
// reached over HTTPS) with token. Insecure skips certificate checks, as
// ARVADOS_API_HOST_INSECURE asks.
func New(host, token string, insecure bool) *Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
		ForceAttemptHTTP2:     true,
	}
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return &Client{host: host, token: token, http: &http.Client{Transport: tr}}
}

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Collection is what the live set needs of one collection.
type Collection struct {
	UUID         string `json:"uuid"`
	ManifestText string `json:"manifest_text"`
	// ReplicationDesired is the collection's wanted copies, or nil for
	// the cluster's default.
	ReplicationDesired *int `json:"replication_desired"`
}

// Collections calls fn for every collection the API server still holds,
// in uuid order, and stops at the first error fn returns: those in the
// trash too, until they are deleted (their delete_at), since they can be
// untrashed until then and need their blocks, and old versions of
// collections (include_trash and include_old_versions, as Arvados
// keep-balance asks). It pages by uuid, so collections created meanwhile
// may or may not be seen; one that existed throughout is seen exactly
// once.
func (c *Client) Collections(ctx context.Context, fn func(Collection) error) error {
	last := ""
	for {
		page, err := c.page(ctx, last)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, col := range page {
			if col.UUID <= last {
				return fmt.Errorf("API server %s: collections out of order (%q after %q): refusing a list that might skip some", c.host, col.UUID, last)
			}
			if col.ReplicationDesired != nil && (*col.ReplicationDesired < 0 || *col.ReplicationDesired > 1000) {
				return fmt.Errorf("API server %s: collection %s wants %d replicas", c.host, col.UUID, *col.ReplicationDesired)
			}
			if err := fn(col); err != nil {
				return err
			}
			last = col.UUID
		}
	}
}

// page returns the collections after uuid last.
func (c *Client) page(ctx context.Context, last string) ([]Collection, error) {
	q := url.Values{}
	q.Set("limit", fmt.Sprint(PageSize))
	q.Set("order", `["uuid asc"]`)
	q.Set("select", `["uuid","manifest_text","replication_desired"]`)
	q.Set("count", "none")
	q.Set("include_trash", "true")
	q.Set("include_old_versions", "true")
	if last != "" {
		f, _ := json.Marshal([][]string{{"uuid", ">", last}})
		q.Set("filters", string(f))
	}
	var body struct {
		Items *[]Collection `json:"items"`
	}
	const what = "listing collections"
	if err := c.call(ctx, what, http.MethodGet, "/arvados/v1/collections", q, nil, &body); err != nil {
		return nil, err
	}
	if body.Items == nil {
		return nil, fmt.Errorf("%s from API server %s: the answer has no items", what, c.host)
	}
	if len(*body.Items) > PageSize {
		return nil, fmt.Errorf("%s from API server %s: %d collections on a page of %d", what, c.host, len(*body.Items), PageSize)
	}
	return *body.Items, nil
}

// StatusError is an API server's refusal: its status and message.
type StatusError struct {
	What   string // what was being done
	Host   string
	Status int
	Msg    string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: API server %s answered %d %s: %s", e.What, e.Host, e.Status, http.StatusText(e.Status), e.Msg)
}

// call sends one request (body, if not nil, as JSON) and decodes the
// answer into out. what says what it does, for errors.
func (c *Client) call(ctx context.Context, what, method, path string, q url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	u := url.URL{Scheme: "https", Host: c.host, Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s from API server %s: %w", what, c.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		var e struct{ Errors []string }
		if json.Unmarshal(b, &e) == nil && len(e.Errors) > 0 {
			msg = strings.Join(e.Errors, "; ")
		}
		msg = strings.ReplaceAll(msg, c.token, "***")
		if len(msg) > 500 {
			msg = msg[:500] + "..."
		}
		return &StatusError{What: what, Host: c.host, Status: resp.StatusCode, Msg: msg}
	}
	lr := &io.LimitedReader{R: resp.Body, N: maxPageBytes + 1}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		if lr.N <= 0 {
			return fmt.Errorf("%s from API server %s: an answer larger than %d bytes", what, c.host, maxPageBytes)
		}
		return fmt.Errorf("%s from API server %s: not the expected answer: %v", what, c.host, err)
	}
	return nil
}

// ErrNotFound is returned for a collection the API server does not have.
var ErrNotFound = errors.New("no such collection")

// Record is a collection as Get, Find and Create return it.
type Record struct {
	UUID             string `json:"uuid"`
	Name             string `json:"name"`
	PortableDataHash string `json:"portable_data_hash"`
	// ManifestText is signed for the client's token by the API server.
	ManifestText       string `json:"manifest_text"`
	ReplicationDesired *int   `json:"replication_desired"`
}

// Get returns the collection with uuid or portable data hash id.
func (c *Client) Get(ctx context.Context, id string) (Record, error) {
	var r Record
	err := c.call(ctx, "reading collection "+id, http.MethodGet, "/arvados/v1/collections/"+url.PathEscape(id), nil, nil, &r)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return r, fmt.Errorf("collection %s at API server %s: %w", id, c.host, ErrNotFound)
	}
	if err == nil && r.UUID == "" && r.PortableDataHash == "" {
		return r, fmt.Errorf("reading collection %s from API server %s: the answer is not a collection", id, c.host)
	}
	return r, err
}

// Lookup returns the collection id names: by uuid or portable data hash
// (Get) if it has the form of one, else by name (Find).
func (c *Client) Lookup(ctx context.Context, id string) (Record, error) {
	if protocol.IsUUID(id) || protocol.IsPDH(id) {
		return c.Get(ctx, id)
	}
	return c.Find(ctx, id)
}

// Find returns the collection named name that is not in the trash.
func (c *Client) Find(ctx context.Context, name string) (Record, error) {
	f, _ := json.Marshal([][]string{{"name", "=", name}})
	q := url.Values{"filters": {string(f)}, "limit": {"2"}, "count": {"none"}}
	var body struct {
		Items []Record `json:"items"`
	}
	what := fmt.Sprintf("looking up collection %q", name)
	if err := c.call(ctx, what, http.MethodGet, "/arvados/v1/collections", q, nil, &body); err != nil {
		return Record{}, err
	}
	switch len(body.Items) {
	case 0:
		return Record{}, fmt.Errorf("no collection named %q at API server %s: %w", name, c.host, ErrNotFound)
	case 1:
		if body.Items[0].Name != name {
			return Record{}, fmt.Errorf("%s from API server %s: it answered collection %q", what, c.host, body.Items[0].Name)
		}
		return body.Items[0], nil
	}
	return Record{}, fmt.Errorf("%s: API server %s has several collections of that name; use a uuid (%s, %s)", what, c.host, body.Items[0].UUID, body.Items[1].UUID)
}

// NewCollection is what Create records.
type NewCollection struct {
	Name         string `json:"name,omitempty"`
	ManifestText string `json:"manifest_text"`
	// ReplicationDesired is the copies wanted; nil for the default.
	ReplicationDesired    *int     `json:"replication_desired,omitempty"`
	StorageClassesDesired []string `json:"storage_classes_desired,omitempty"`
}

// Create records a new collection and returns it.
func (c *Client) Create(ctx context.Context, nc NewCollection) (Record, error) {
	var r Record
	what := "creating collection"
	if nc.Name != "" {
		what = fmt.Sprintf("creating collection %q", nc.Name)
	}
	err := c.call(ctx, what, http.MethodPost, "/arvados/v1/collections", nil, map[string]any{"collection": nc}, &r)
	if err == nil && r.UUID == "" {
		err = fmt.Errorf("%s at API server %s: the answer names no uuid", what, c.host)
	}
	return r, err
}
