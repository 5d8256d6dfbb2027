// Package arvconfig reads the part of an Arvados cluster configuration
// file (config.yml) that a keepstore or keepproxy uses, so that "keep
// server --config" and "keep proxy --config" can replace them on a host
// without new configuration: the tokens, the blob signing and trash
// settings, the request limit, the services' internal URLs and TLS
// files, the volumes, and which of them belong to this server.
package arvconfig

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the top of config.yml.
type File struct {
	Clusters map[string]Cluster `yaml:"Clusters"`
}

// Cluster is one cluster's settings, as far as keepstore and keepproxy
// read them.
type Cluster struct {
	SystemRootToken string `yaml:"SystemRootToken"`
	// ManagementToken guards the health and metrics routes in Arvados.
	// It is read so that it is at hand when our servers enforce it.
	ManagementToken string `yaml:"ManagementToken"`
	Collections     struct {
		BlobSigning    *bool    `yaml:"BlobSigning"`
		BlobSigningKey string   `yaml:"BlobSigningKey"`
		BlobSigningTTL Duration `yaml:"BlobSigningTTL"`
		BlobTrash      *bool    `yaml:"BlobTrash"`
		// The trash settings are nil when absent, because 0 means
		// something in Arvados: delete at once (BlobTrashLifetime),
		// never sweep (BlobTrashCheckInterval), no workers (the
		// concurrencies).
		BlobTrashLifetime        *Duration `yaml:"BlobTrashLifetime"`
		BlobTrashCheckInterval   *Duration `yaml:"BlobTrashCheckInterval"`
		BlobTrashConcurrency     *int      `yaml:"BlobTrashConcurrency"`
		BlobReplicateConcurrency *int      `yaml:"BlobReplicateConcurrency"`
	} `yaml:"Collections"`
	API struct {
		MaxConcurrentRequests int `yaml:"MaxConcurrentRequests"`
	} `yaml:"API"`
	SystemLogs struct {
		LogLevel string `yaml:"LogLevel"`
	} `yaml:"SystemLogs"`
	// TLS names the certificate and key a service whose URL is https
	// serves, as file:// URLs.
	TLS struct {
		Certificate string `yaml:"Certificate"`
		Key         string `yaml:"Key"`
	} `yaml:"TLS"`
	Services struct {
		Keepstore Service `yaml:"Keepstore"`
		Keepproxy Service `yaml:"Keepproxy"`
		// Controller is the API server; the proxy asks it which tokens
		// it accepts (see ControllerHost).
		Controller Service `yaml:"Controller"`
	} `yaml:"Services"`
	Volumes map[string]Volume `yaml:"Volumes"`
}

// Service is one entry of Clusters.ID.Services: where each of the
// service's processes is reached inside the cluster (InternalURLs, one
// per process) and, for services clients use directly, from outside.
type Service struct {
	InternalURLs map[string]InternalURL `yaml:"InternalURLs"`
	ExternalURL  string                 `yaml:"ExternalURL"`
}

// InternalURL is the value of one InternalURLs entry.
type InternalURL struct {
	// ListenURL, if set, is where the process listens when that differs
	// from the URL others use to reach it (behind NAT, say).
	ListenURL string `yaml:"ListenURL"`
}

// Volume is one entry of Clusters.ID.Volumes.
type Volume struct {
	Driver           string          `yaml:"Driver"`
	DriverParameters map[string]any  `yaml:"DriverParameters"`
	ReadOnly         bool            `yaml:"ReadOnly"`
	Replication      int             `yaml:"Replication"`
	StorageClasses   map[string]bool `yaml:"StorageClasses"`
	AccessViaHosts   map[string]struct {
		ReadOnly bool `yaml:"ReadOnly"`
	} `yaml:"AccessViaHosts"`
}

// Duration is an Arvados config duration: a Go duration ("336h", "1h30m"),
// a bare number of seconds, or a number of days or weeks ("14d", "2w").
type Duration time.Duration

// UnmarshalYAML parses a Duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses an Arvados config duration (see Duration).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			if f, err := strconv.ParseFloat(n, 64); err == nil {
				return time.Duration(f * float64(unit)), nil
			}
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// Load parses config.yml and returns the cluster id (the only one in
// the file when id is "") and its settings.
func Load(data []byte, id string) (string, *Cluster, error) {
	var f File
	if err := yaml.Unmarshal(data, &f); err != nil {
		return "", nil, fmt.Errorf("not a cluster configuration: %w", err)
	}
	if id == "" {
		if len(f.Clusters) != 1 {
			ids := make([]string, 0, len(f.Clusters))
			for k := range f.Clusters {
				ids = append(ids, k)
			}
			sort.Strings(ids)
			return "", nil, fmt.Errorf("the file configures %d clusters (%s); say which", len(f.Clusters), strings.Join(ids, ", "))
		}
		for k := range f.Clusters {
			id = k
		}
	}
	c, ok := f.Clusters[id]
	if !ok {
		return "", nil, fmt.Errorf("the file does not configure cluster %q", id)
	}
	return id, &c, nil
}

// Endpoint is this process's entry among a service's InternalURLs.
type Endpoint struct {
	InternalURL string // the entry, as written in the file
	Listen      string // host:port to listen on: the ListenURL's, else the entry's
	TLS         bool   // the URL listened on is https
}

// Keepstore is what one keepstore of the cluster serves.
type Keepstore struct {
	Endpoint
	Volumes []VolumeConfig // none when no volume is for this keepstore
}

// VolumeConfig is a volume as this keepstore uses it.
type VolumeConfig struct {
	UUID           string
	Driver         string         // as written: "Directory", "S3", ...
	Params         map[string]any // DriverParameters, read by the driver
	ReadOnly       bool
	Replication    int // at least 1
	StorageClasses []string
}

// ErrNotThisHost is returned by Self and Proxy when no internal URL of
// the service is on this host.
var ErrNotThisHost = errors.New("none is on this host")

// ErrSeveralOnHost is returned by Self and Proxy when several internal
// URLs of the service are on this host and none was given.
var ErrSeveralOnHost = errors.New("several are on this host")

// Self picks this server's entry among the keepstores' internal URLs, as
// keepstore does: the one given (matched with or without a trailing
// slash), else the only one whose host is an address of this machine,
// and returns it with the volumes it serves: those whose AccessViaHosts
// is empty (every keepstore) or names it, each with its driver's name
// and parameters as written, for the driver to read (see FillServer).
func (c *Cluster) Self(given string, local func(host string) bool) (*Keepstore, error) {
	ep, err := pick("Services.Keepstore.InternalURLs", c.Services.Keepstore, given, local)
	if err != nil {
		return nil, err
	}
	ks := &Keepstore{Endpoint: *ep}
	self := ep.InternalURL

	var uuids []string
	for u := range c.Volumes {
		uuids = append(uuids, u)
	}
	sort.Strings(uuids)
	for _, uuid := range uuids {
		v := c.Volumes[uuid]
		readOnly := v.ReadOnly
		if len(v.AccessViaHosts) > 0 {
			a, ok := v.AccessViaHosts[self]
			if !ok {
				a, ok = v.AccessViaHosts[strings.TrimSuffix(self, "/")]
			}
			if !ok {
				a, ok = v.AccessViaHosts[strings.TrimSuffix(self, "/")+"/"]
			}
			if !ok {
				continue
			}
			readOnly = readOnly || a.ReadOnly
		}
		vc := VolumeConfig{UUID: uuid, Driver: v.Driver, Params: v.DriverParameters, ReadOnly: readOnly, Replication: max(v.Replication, 1)}
		for cl, on := range v.StorageClasses {
			if on {
				vc.StorageClasses = append(vc.StorageClasses, cl)
			}
		}
		sort.Strings(vc.StorageClasses)
		ks.Volumes = append(ks.Volumes, vc)
	}
	return ks, nil
}

// Proxy picks this proxy's entry among the keepproxies' internal URLs,
// as Self does for keepstores.
func (c *Cluster) Proxy(given string, local func(host string) bool) (*Endpoint, error) {
	return pick("Services.Keepproxy.InternalURLs", c.Services.Keepproxy, given, local)
}

// pick chooses this process's entry among svc's internal URLs (named
// key in messages): the one given, else the only one on this host.
func pick(key string, svc Service, given string, local func(host string) bool) (*Endpoint, error) {
	var urls []string
	for u := range svc.InternalURLs {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	if len(urls) == 0 {
		return nil, fmt.Errorf("%s is empty", key)
	}
	var self string
	if given != "" {
		for _, u := range urls {
			if strings.TrimSuffix(u, "/") == strings.TrimSuffix(given, "/") {
				self = u
			}
		}
		if self == "" {
			return nil, fmt.Errorf("%s is not among %s (%s)", given, key, strings.Join(urls, ", "))
		}
	} else {
		var mine []string
		for _, u := range urls {
			if pu, err := url.Parse(u); err == nil && local(pu.Hostname()) {
				mine = append(mine, u)
			}
		}
		switch len(mine) {
		case 0:
			return nil, fmt.Errorf("%s (%s): %w", key, strings.Join(urls, ", "), ErrNotThisHost)
		case 1:
			self = mine[0]
		default:
			return nil, fmt.Errorf("%s: %w (%s)", key, ErrSeveralOnHost, strings.Join(mine, ", "))
		}
	}
	listen := self
	if l := svc.InternalURLs[self].ListenURL; l != "" {
		listen = l
	}
	pu, err := url.Parse(listen)
	if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
		return nil, fmt.Errorf("%s: %q is not an http or https URL with a host", key, listen)
	}
	port := pu.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[pu.Scheme]
	}
	return &Endpoint{InternalURL: self, Listen: net.JoinHostPort(pu.Hostname(), port), TLS: pu.Scheme == "https"}, nil
}

// ControllerHost returns the host[:port] of Services.Controller's
// ExternalURL, the API server that knows the cluster's tokens, as
// ARVADOS_API_HOST names it; "" when the file sets none. The URL must
// be https: tokens are never sent in clear.
func (c *Cluster) ControllerHost() (string, error) {
	ext := c.Services.Controller.ExternalURL
	if ext == "" {
		return "", nil
	}
	u, err := url.Parse(ext)
	switch {
	case err != nil || u.Host == "" || u.User != nil || strings.Trim(u.Path, "/") != "" || u.RawQuery != "":
		return "", fmt.Errorf("Services.Controller.ExternalURL %q is not an https URL of a host", ext)
	case u.Scheme != "https":
		return "", fmt.Errorf("Services.Controller.ExternalURL %q is not https, and tokens are checked over https only", ext)
	}
	if u.Port() == "443" {
		return u.Hostname(), nil
	}
	return u.Host, nil
}

// TLSFiles returns the paths of the certificate and key in TLS, which
// Arvados writes as file:// URLs (a bare absolute path is accepted too).
func (c *Cluster) TLSFiles() (cert, key string, err error) {
	path := func(name, v string) (string, error) {
		p, _ := strings.CutPrefix(v, "file://")
		switch {
		case v == "":
			return "", fmt.Errorf("TLS.%s is not set", name)
		case !filepath.IsAbs(p):
			return "", fmt.Errorf("TLS.%s %q: want file:///PATH", name, v)
		}
		return p, nil
	}
	if cert, err = path("Certificate", c.TLS.Certificate); err != nil {
		return "", "", err
	}
	if key, err = path("Key", c.TLS.Key); err != nil {
		return "", "", err
	}
	return cert, key, nil
}

// IsLocal reports whether host is an address of this machine, or its
// name: the default way Self recognises this server's URL.
func IsLocal(host string) bool {
	if h, err := os.Hostname(); err == nil && strings.EqualFold(h, host) {
		return true
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ip := range ips {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// SigningRequired reports Collections.BlobSigning (default true, as
// Arvados): reads need a valid signature.
func (c *Cluster) SigningRequired() bool {
	return c.Collections.BlobSigning == nil || *c.Collections.BlobSigning
}

// TrashEnabled reports Collections.BlobTrash (default true, as Arvados).
func (c *Cluster) TrashEnabled() bool {
	return c.Collections.BlobTrash == nil || *c.Collections.BlobTrash
}
