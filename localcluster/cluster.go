// Package localcluster runs a Keep cluster on this machine: block servers
// (package keepstore) and optionally a proxy (package keepproxy) on real
// loopback listeners, with data in a directory. "keep up", "keep demo"
// and "keep bench" are built on it.
//
// Each node can be stopped (its port then refuses connections) or marked
// full (it answers writes with 507 Insufficient Storage, as a keepstore
// with no room does), so that demonstrations and tests can watch the
// client route around faults.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keepproject/keep/internal/flock"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepproxy"
	"github.com/keepproject/keep/keepstore"
	_ "github.com/keepproject/keep/keepstore/dirvolume" // the servers' volumes are directories unless Config.Volume says otherwise
)

// Config describes a local cluster.
type Config struct {
	// Dir holds each server's volume, in Dir/server-N.
	Dir string
	// Servers is the number of block servers. Default 4.
	Servers int
	// Proxy starts a proxy in front of the servers.
	Proxy bool
	// Host is the address to listen on. Default 127.0.0.1.
	Host string
	// ClusterID is the first part of every service uuid. Default "local".
	ClusterID string
	// Logger receives the servers' logs. Default: discard.
	Logger *slog.Logger
	// Capacity limits each server's volume, in bytes; 0 means no limit.
	Capacity int64
	// Volume, if set, gives server i its volume in place of the
	// directory dir (Dir/server-N, created): a URL as keep server's
	// --volume takes it (s3://BUCKET?..., say), of a driver the program
	// has registered (see keepstore.RegisterDriver).
	Volume func(i int, dir string) (string, error)
	// SystemToken opens the servers' management API (/index, /mounts,
	// pull and trash lists), for keep check and keep balance. Empty
	// means nobody may use it.
	SystemToken string
}

// Node is one server of the cluster.
type Node struct {
	Service keepclient.Service
	// Dir is the server's volume directory (empty for the proxy).
	Dir string

	srv     *http.Server
	serving chan struct{} // closed when Serve returns
	closer  io.Closer     // the handler, if it needs closing; nil otherwise
	full    atomic.Bool
	stop    sync.Once
}

// Cluster is a running local cluster.
type Cluster struct {
	Servers []*Node
	Proxy   *Node // nil unless Config.Proxy

	proxyClient *keepclient.Client
	lock        *flock.Lock // of Config.Dir
}

// ErrInUse is returned by Start when another cluster runs in Config.Dir.
var ErrInUse = errors.New("cluster directory in use")

// Start starts the cluster, holding a lock on Config.Dir until Close (a
// second cluster on the same directory gets ErrInUse). Close stops it.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Servers <= 0 {
		cfg.Servers = 4
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.ClusterID == "" {
		cfg.ClusterID = "local"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := flock.Take(filepath.Join(cfg.Dir, ".lock"))
	var held *flock.HeldError
	if errors.As(err, &held) {
		who := "another process"
		if held.Holder != "" {
			who = "process " + held.Holder
		}
		return nil, fmt.Errorf("%w: %s is in use by %s; stop it or choose another directory", ErrInUse, cfg.Dir, who)
	}
	if err != nil {
		return nil, err
	}
	c := &Cluster{lock: lock}
	for i := 0; i < cfg.Servers; i++ {
		dir := filepath.Join(cfg.Dir, "server-"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			c.Close()
			return nil, err
		}
		vc := keepstore.VolumeConfig{Path: dir, Capacity: cfg.Capacity}
		if cfg.Volume != nil {
			if vc.Path, err = cfg.Volume(i, dir); err != nil {
				c.Close()
				return nil, fmt.Errorf("server %d: %w", i, err)
			}
		}
		ks, err := keepstore.NewWithContext(ctx, keepstore.Config{
			Volumes:     []keepstore.VolumeConfig{vc},
			SystemToken: cfg.SystemToken,
			Logger:      cfg.Logger.With("server", i),
		})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("server %d: %w", i, err)
		}
		n, err := startNode(cfg.Host, fmt.Sprintf("%s-bi6l4-%015d", cfg.ClusterID, i), keepclient.TypeDisk, ks)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("server %d: %w", i, err)
		}
		n.Dir = dir
		c.Servers = append(c.Servers, n)
	}
	if cfg.Proxy {
		kc, err := keepclient.New(keepclient.Options{Services: c.Services(), Logger: cfg.Logger})
		if err != nil {
			c.Close()
			return nil, err
		}
		c.proxyClient = kc
		n, err := startNode(cfg.Host, fmt.Sprintf("%s-bi6l4-proxy%010d", cfg.ClusterID, 0), keepclient.TypeProxy, keepproxy.New(kc, cfg.Logger.With("server", "proxy")))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("starting the proxy: %w", err)
		}
		c.Proxy = n
	}
	return c, nil
}

func startNode(host, uuid, typ string, h http.Handler) (*Node, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	addr := l.Addr().(*net.TCPAddr)
	n := &Node{
		Service: keepclient.Service{UUID: uuid, Host: host, Port: addr.Port, Type: typ},
		serving: make(chan struct{}),
	}
	n.srv = &http.Server{Handler: n.faults(h), ReadHeaderTimeout: 30 * time.Second}
	n.closer, _ = h.(io.Closer)
	go func() {
		defer close(n.serving)
		n.srv.Serve(l)
	}()
	return n, nil
}

// faults wraps h so that a node marked full refuses writes before their
// bodies are sent, exactly as a full keepstore does.
func (n *Node) faults(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && n.full.Load() {
			http.Error(w, "insufficient storage", http.StatusInsufficientStorage)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// SetFull makes the node answer every write with 507, or stops doing so.
func (n *Node) SetFull(full bool) { n.full.Store(full) }

// Stop shuts the node down: its port refuses connections from then on.
// Requests in flight are finished. Stop is idempotent.
func (n *Node) Stop() {
	n.stop.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		n.srv.Shutdown(ctx)
		<-n.serving
		if n.closer != nil {
			n.closer.Close() // a block server's workers and volume locks
		}
	})
}

// Services returns the block servers as disk services.
func (c *Cluster) Services() []keepclient.Service {
	var out []keepclient.Service
	for _, n := range c.Servers {
		out = append(out, n.Service)
	}
	return out
}

// ProxyServices returns the proxy alone, as a non-disk service.
func (c *Cluster) ProxyServices() []keepclient.Service {
	if c.Proxy == nil {
		return nil
	}
	return []keepclient.Service{c.Proxy.Service}
}

// Holders returns the nodes whose volume holds the block with this hash.
func (c *Cluster) Holders(hash string) []*Node {
	var out []*Node
	for _, n := range c.Servers {
		if _, err := os.Stat(filepath.Join(n.Dir, hash[:3], hash)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// Close stops every node, finishing requests in flight.
func (c *Cluster) Close() {
	if c.Proxy != nil {
		c.Proxy.Stop()
	}
	if c.proxyClient != nil {
		c.proxyClient.Close()
	}
	for _, n := range c.Servers {
		n.Stop()
	}
	if c.lock != nil {
		c.lock.Unlock()
		c.lock = nil
	}
}
