// Package arvconfig reads the part of an Arvados cluster configuration
// file (config.yml) that a keepstore uses, so that "keep server --config"
// can replace keepstore on a host without new configuration: the tokens,
// the blob signing and trash settings, the keepstores' internal URLs and
// the volumes, and which of them belong to this server.
package arvconfig

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
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

// Cluster is one cluster's settings, as far as keepstore reads them.
type Cluster struct {
	SystemRootToken string `yaml:"SystemRootToken"`
	ManagementToken string `yaml:"ManagementToken"`
	Collections     struct {
		BlobSigning            bool     `yaml:"BlobSigning"`
		BlobSigningKey         string   `yaml:"BlobSigningKey"`
		BlobSigningTTL         Duration `yaml:"BlobSigningTTL"`
		BlobTrash              *bool    `yaml:"BlobTrash"`
		BlobTrashLifetime      Duration `yaml:"BlobTrashLifetime"`
		BlobTrashCheckInterval Duration `yaml:"BlobTrashCheckInterval"`
	} `yaml:"Collections"`
	Services struct {
		Keepstore struct {
			InternalURLs map[string]struct {
				ListenURL string `yaml:"ListenURL"`
			} `yaml:"InternalURLs"`
		} `yaml:"Keepstore"`
	} `yaml:"Services"`
	Volumes map[string]Volume `yaml:"Volumes"`
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

// Keepstore is what one keepstore of the cluster serves.
type Keepstore struct {
	InternalURL string // its entry in Services.Keepstore.InternalURLs
	Listen      string // host:port to listen on
	Volumes     []VolumeConfig
}

// VolumeConfig is a volume as this keepstore uses it.
type VolumeConfig struct {
	UUID           string
	Driver         string
	Root           string // Directory volumes: the directory
	ReadOnly       bool
	Replication    int
	StorageClasses []string
}

// ErrNotThisHost is returned by Self when no keepstore URL is this host's.
var ErrNotThisHost = errors.New("no keepstore internal URL is on this host")

// Self picks this server's entry among the keepstores' internal URLs, as
// keepstore does: the one given (matched with or without a trailing
// slash), else the only one whose host is an address of this machine,
// and returns it with the volumes it serves: those whose AccessViaHosts
// is empty (every keepstore) or names it.
func (c *Cluster) Self(given string, local func(host string) bool) (*Keepstore, error) {
	var urls []string
	for u := range c.Services.Keepstore.InternalURLs {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	if len(urls) == 0 {
		return nil, errors.New("Services.Keepstore.InternalURLs is empty")
	}
	var self string
	if given != "" {
		for _, u := range urls {
			if strings.TrimSuffix(u, "/") == strings.TrimSuffix(given, "/") {
				self = u
			}
		}
		if self == "" {
			return nil, fmt.Errorf("%s is not among Services.Keepstore.InternalURLs (%s)", given, strings.Join(urls, ", "))
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
			return nil, fmt.Errorf("%w (%s); give the one to serve", ErrNotThisHost, strings.Join(urls, ", "))
		case 1:
			self = mine[0]
		default:
			return nil, fmt.Errorf("several keepstore internal URLs are on this host (%s); give the one to serve", strings.Join(mine, ", "))
		}
	}
	ks := &Keepstore{InternalURL: self}
	listen := self
	if l := c.Services.Keepstore.InternalURLs[self].ListenURL; l != "" {
		listen = l
	}
	pu, err := url.Parse(listen)
	if err != nil || pu.Host == "" {
		return nil, fmt.Errorf("keepstore URL %q: not a URL with a host", listen)
	}
	port := pu.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[pu.Scheme]
		if port == "" {
			port = "80"
		}
	}
	ks.Listen = net.JoinHostPort(pu.Hostname(), port)

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
				continue
			}
			readOnly = readOnly || a.ReadOnly
		}
		vc := VolumeConfig{UUID: uuid, Driver: v.Driver, ReadOnly: readOnly, Replication: max(v.Replication, 1)}
		for cl, on := range v.StorageClasses {
			if on {
				vc.StorageClasses = append(vc.StorageClasses, cl)
			}
		}
		sort.Strings(vc.StorageClasses)
		switch v.Driver {
		case "Directory":
			root, _ := v.DriverParameters["Root"].(string)
			if root == "" {
				return nil, fmt.Errorf("volume %s: Directory driver without DriverParameters.Root", uuid)
			}
			vc.Root = root
		default:
			return nil, fmt.Errorf("volume %s: driver %q is not supported (only Directory)", uuid, v.Driver)
		}
		ks.Volumes = append(ks.Volumes, vc)
	}
	if len(ks.Volumes) == 0 {
		return nil, fmt.Errorf("no volume is configured for %s", self)
	}
	return ks, nil
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

// TrashEnabled reports Collections.BlobTrash (default true, as Arvados).
func (c *Cluster) TrashEnabled() bool {
	return c.Collections.BlobTrash == nil || *c.Collections.BlobTrash
}
