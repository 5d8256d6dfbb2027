// Package arvapi reads what keep needs from an Arvados API server: the
// collections (trashed ones and old versions included), whose manifests
// and wanted replication make the live set that keep balance keeps. Answers are untrusted input: pages are
// bounded, must advance, and a malformed one is an error, never a
// shorter list.
package arvapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
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
	u := url.URL{Scheme: "https", Host: c.host, Path: "/arvados/v1/collections", RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("listing collections from API server %s: %w", c.host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		msg := strings.ReplaceAll(strings.TrimSpace(string(b)), c.token, "***")
		return nil, fmt.Errorf("listing collections from API server %s: %s %s", c.host, resp.Status, msg)
	}
	var body struct {
		Items *[]Collection `json:"items"`
	}
	lr := &io.LimitedReader{R: resp.Body, N: maxPageBytes + 1}
	if err := json.NewDecoder(lr).Decode(&body); err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("listing collections from API server %s: a page larger than %d bytes", c.host, maxPageBytes)
		}
		return nil, fmt.Errorf("listing collections from API server %s: not a collection list: %v", c.host, err)
	}
	if body.Items == nil {
		return nil, fmt.Errorf("listing collections from API server %s: the answer has no items", c.host)
	}
	if len(*body.Items) > PageSize {
		return nil, fmt.Errorf("listing collections from API server %s: %d collections on a page of %d", c.host, len(*body.Items), PageSize)
	}
	return *body.Items, nil
}
