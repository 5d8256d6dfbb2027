// Package keepclient writes and reads Keep blocks on a set of block
// services, compatibly with Arvados.
//
// The heart of the package is Put, the replicated write: it stores a block
// on N services in their rendezvous (probe) order, surviving slow, full,
// failing and read-only services, and reports per service what happened
// when it cannot. Every upload tells its server the whole N wanted
// (X-Keep-Desired-Replicas), as the Arvados clients do. Disk services are
// written several at once, each upload filling a share of the N: one
// replica, or what the service's last successful upload counted for (a
// volume with Replication 2 counts for two); with any other kind of
// service (a proxy) one upload at a time is asked for all that is
// missing. A failure starts the next service. An upload that lags behind
// the block's others is abandoned before its last body byte is sent, so
// its server cannot store it, and the next service starts in its place.
//
// An answer counts for its X-Keep-Replicas-Stored, or, when it names the
// volumes holding the block (X-Keep-Volumes-Stored, which our servers
// send), for the replicas on volumes no earlier answer of the write
// named, so that servers sharing a volume count once; never for more than
// is still missing. An upload starts only while the replicas counted plus
// those asked of uploads in flight stay within N. So, without storage
// classes, the uploads in flight plus those that counted for something
// never exceed N; beyond them, only uploads that counted for nothing
// store the block: to a volume counted already, or still in flight when
// other answers counted for more than they asked. (An upload whose answer
// is lost after its whole body was sent is counted as failed and may
// still have been stored: no client can know.)
//
// Every decision of the write is made by a pure plan (schedule.go) from
// what has happened so far, with the clock and upload progress passed
// in; the HTTP is at the edge (upload.go, response.go). Get and Head read
// blocks back with fallback across services, planned the same way
// (readplan.go).
package keepclient

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Options configure a Client. The zero value of each field selects the
// default documented on it.
type Options struct {
	// Services are the Keep services to use.
	Services []Service
	// Refresh, if set, is called before every write pass after the first
	// and before every read pass after the first, to pick up changes in
	// the service list (for example from an Arvados API server).
	Refresh func(ctx context.Context) ([]Service, error)
	// Token is sent as "Authorization: Bearer Token".
	Token string
	// RemoteClusters maps the 5-character ids of other Arvados clusters
	// to the Keep service (usually a proxy) that serves their blocks. A
	// read of a locator with a +K@id hint asks that service first, with
	// Token salted for that cluster as Arvados federation does (only v2
	// tokens can be). Hints naming clusters not listed here are ignored:
	// a manifest from elsewhere never makes the client send its token to a
	// host it was not configured with.
	RemoteClusters map[string]Service
	// Replicas is the default number of copies Put stores. Default 2.
	Replicas int
	// StorageClasses are the default classes Put asks for. Default none,
	// which lets each server use its default class.
	StorageClasses []string
	// MaxPasses is how many passes over the services a write or read
	// makes before giving up. Default 3.
	MaxPasses int
	// RetryDelay is the upper bound of the first randomised pause between
	// passes; it doubles after each pass, up to 10 times its start.
	// Default 1s.
	RetryDelay time.Duration
	// MaxRetryAfter is the longest Retry-After a write waits for before
	// trying a busy service again; a longer one counts as final, like a
	// full server's 503. Default 1m.
	MaxRetryAfter time.Duration
	// MaxRequests bounds the HTTP requests this client has in flight at
	// once, across all concurrent calls. Default 32.
	MaxRequests int
	// ConnectTimeout bounds connection setup to a disk service; proxies
	// get ten times as long. Default 2s.
	ConnectTimeout time.Duration
	// StallTimeout aborts a request to a disk service that makes no
	// progress (no body bytes sent or received, no response) for this
	// long; proxies get six times as long, as they do their own writes
	// before answering. Default 10s.
	StallTimeout time.Duration
	// ExpectContinueTimeout is how long an upload waits for a server's
	// "100 Continue" before sending the body anyway. Default 1s.
	ExpectContinueTimeout time.Duration
	// Logger receives warnings about misbehaving servers. Default: discard.
	Logger *slog.Logger
	// LagFactor and LagMin say when an upload lags: once it has run
	// LagFactor times as long as the block's fastest successful upload,
	// and at least LagMin, and would take longer to finish at its rate so
	// far than a fresh upload would. A lagging upload that has not sent
	// its whole body is abandoned (the server cannot have stored it) and
	// the next service in probe order is started in its place, so one
	// slow server does not set the pace and no more than the wanted
	// replicas are ever stored; the slow service is then tried after the
	// others for DownHold. An upload that has sent its whole body is
	// never abandoned for lag, only for stalling. Defaults 2 and 300ms.
	LagFactor float64
	LagMin    time.Duration
	// DownHold is how long a service that refused a connection, or
	// lagged, is tried after the others. Default 10s; negative turns this off.
	DownHold time.Duration
	// Insecure skips TLS certificate verification, as
	// ARVADOS_API_HOST_INSECURE asks.
	Insecure bool
}

// Client writes and reads blocks. It is safe for concurrent use and
// should be reused: it owns connection pools and the request limit.
type Client struct {
	opts   Options
	disk   *http.Client // for disk services
	proxy  *http.Client // for every other service
	slots  chan struct{}
	log    *slog.Logger
	svcs   *serviceSet
	down   *downList
	yields *yieldList
	// header is added to every request; set only by WithHeader.
	header http.Header
}

// New returns a Client configured by opts.
func New(opts Options) (*Client, error) {
	if opts.Replicas < 0 {
		return nil, errors.New("keepclient.New: negative Replicas")
	}
	if opts.Replicas == 0 {
		opts.Replicas = 2
	}
	if opts.MaxPasses <= 0 {
		opts.MaxPasses = 3
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = time.Minute
	}
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = 32
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 2 * time.Second
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = 10 * time.Second
	}
	if opts.LagFactor <= 0 {
		opts.LagFactor = 2
	}
	if opts.LagMin <= 0 {
		opts.LagMin = 300 * time.Millisecond
	}
	if opts.DownHold == 0 {
		opts.DownHold = 10 * time.Second
	}
	if opts.ExpectContinueTimeout <= 0 {
		opts.ExpectContinueTimeout = time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		opts:   opts,
		disk:   newHTTPClient(opts.ConnectTimeout, opts.ExpectContinueTimeout, opts.MaxRequests, opts.Insecure),
		proxy:  newHTTPClient(10*opts.ConnectTimeout, opts.ExpectContinueTimeout, opts.MaxRequests, opts.Insecure),
		slots:  make(chan struct{}, opts.MaxRequests),
		log:    log,
		svcs:   newServiceSet(opts.Services),
		down:   newDownList(opts.DownHold, time.Now),
		yields: newYieldList(),
	}, nil
}

func newHTTPClient(connect, expect time.Duration, conns int, insecure bool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:       &tls.Config{InsecureSkipVerify: insecure},
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer(&net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}),
			TLSHandshakeTimeout:   2 * connect,
			ExpectContinueTimeout: expect,
			MaxIdleConns:          4 * conns,
			MaxIdleConnsPerHost:   conns,
			IdleConnTimeout:       90 * time.Second,
			// Blocks are already compressed or incompressible; never ask.
			DisableCompression: true,
			WriteBufferSize:    256 << 10,
			ReadBufferSize:     256 << 10,
		},
		// A block server never redirects; following one would resend
		// a 64 MiB body to a host nobody configured.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close releases idle connections.
func (c *Client) Close() {
	c.disk.CloseIdleConnections()
	c.proxy.CloseIdleConnections()
}

// Services returns a copy of the services the client currently uses.
func (c *Client) Services() []Service { return append([]Service(nil), c.svcs.get()...) }

// SetServices replaces the services the client uses, for c and every
// client made from it by WithToken or WithHeader: reads and writes that
// start from now on use svcs; those in progress keep the list they
// started with (until a refresh, when Options.Refresh is set). The
// caller validates the list; an empty one makes every
// read and write fail. A long-running user, such as a proxy, calls it when
// its services file or API server lists other services (discovery's
// Resolver.Watch).
func (c *Client) SetServices(svcs []Service) { c.svcs.set(svcs) }

func (c *Client) httpFor(s Service) *http.Client {
	if s.IsDisk() {
		return c.disk
	}
	return c.proxy
}

func (c *Client) stallFor(s Service) time.Duration {
	if s.IsDisk() {
		return c.opts.StallTimeout
	}
	return 6 * c.opts.StallTimeout
}

// acquire takes one of the client's request slots.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) release() { <-c.slots }

// refresh asks Options.Refresh for a new service list, keeping the old
// one when it fails.
func (c *Client) refresh(ctx context.Context) {
	if c.opts.Refresh == nil {
		return
	}
	svcs, err := c.opts.Refresh(ctx)
	if err != nil {
		c.log.Warn("refreshing keep services failed; keeping the old list", "err", err)
		return
	}
	c.svcs.set(svcs)
}

// WithHeader returns a client that adds the header key: value to every
// request and otherwise shares everything with c.
func (c *Client) WithHeader(key, value string) *Client {
	cc := *c
	cc.header = c.header.Clone()
	if cc.header == nil {
		cc.header = make(http.Header)
	}
	cc.header.Set(key, value)
	return &cc
}

// WithToken returns a client that sends token instead of Options.Token
// and shares c's connections, request limit and service list. Proxies use
// it to pass each caller's token on.
func (c *Client) WithToken(token string) *Client {
	cc := *c
	cc.opts.Token = token
	return &cc
}
