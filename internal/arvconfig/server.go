package arvconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/keepproject/keep/keepstore"
)

// ServerSettings are the settings of a keep server that an Arvados
// cluster configuration can give, in the terms of keep server's flags:
// the trash settings keep Arvados' meanings of 0, which StoreConfig
// turns into keepstore's.
type ServerSettings struct {
	Listen            string // host:port
	InternalURL       string // the InternalURLs entry served, with a configuration
	Volumes           []keepstore.VolumeConfig
	SigningKey        []byte
	SigningTTL        time.Duration
	RequireSignatures bool
	SystemToken       string
	ManagementToken   string
	MaxRequests       int
	TLSCert, TLSKey   string // files; both "" for plain HTTP
	LogLevel          string // a slog level name: debug, info, warn or error

	Trash              bool
	TrashLifetime      time.Duration // 0: delete at once
	TrashCheckInterval time.Duration // 0: never sweep
	TrashConcurrency   int           // 0: trash off
	PullConcurrency    int
}

// FillServer fills in s from the cluster's settings for the keepstore
// ks (see Self), as Arvados keepstore reads them, leaving alone each
// setting whose keep server flag is in given ("listen", "volume",
// "signing-key-file", "blob-trash-lifetime", ...): a flag given
// overrides the file. The volumes are read by the keepstore drivers
// registered for their Driver names (keepstore.ArvadosVolume).
func (c *Cluster) FillServer(s *ServerSettings, ks *Keepstore, given map[string]bool) error {
	s.InternalURL = ks.InternalURL
	if !given["listen"] {
		s.Listen = ks.Listen
	}
	if !given["volume"] && !given["read-only-volume"] {
		vols, err := ks.storeVolumes()
		if err != nil {
			return err
		}
		s.Volumes = append(s.Volumes, vols...)
	}
	if err := c.fillSigning(s, given); err != nil {
		return err
	}
	if err := c.fillTrash(s, given); err != nil {
		return err
	}
	if !given["management-token-file"] {
		s.ManagementToken = c.ManagementToken
	}
	if !given["system-token-file"] {
		s.SystemToken = c.SystemRootToken
	}
	if !given["max-requests"] && c.API.MaxConcurrentRequests > 0 {
		s.MaxRequests = c.API.MaxConcurrentRequests
	}
	if !given["log-level"] && c.SystemLogs.LogLevel != "" {
		s.LogLevel = logLevel(c.SystemLogs.LogLevel)
	}
	if !given["tls-cert"] {
		cert, key, err := c.tlsFor(ks.Endpoint)
		if err != nil {
			return err
		}
		if cert != "" {
			s.TLSCert, s.TLSKey = cert, key
		}
	}
	return nil
}

// storeVolumes returns the keepstore's volumes as keepstore opens them;
// at least one.
func (ks *Keepstore) storeVolumes() ([]keepstore.VolumeConfig, error) {
	var out []keepstore.VolumeConfig
	for _, v := range ks.Volumes {
		p, err := keepstore.ArvadosVolume(v.Driver, v.Params)
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.UUID, err)
		}
		out = append(out, keepstore.VolumeConfig{ID: v.UUID, Params: p, ReadOnly: v.ReadOnly,
			Replication: v.Replication, Classes: v.StorageClasses})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no volume is for %s: a volume is for the keepstores its AccessViaHosts names, or for all of them when it names none", ks.InternalURL)
	}
	return out, nil
}

// fillSigning fills in the signing settings of s not in given.
func (c *Cluster) fillSigning(s *ServerSettings, given map[string]bool) error {
	if !given["signing-key-file"] {
		s.SigningKey = []byte(c.Collections.BlobSigningKey)
	}
	if !given["signing-ttl"] && c.Collections.BlobSigningTTL > 0 {
		s.SigningTTL = time.Duration(c.Collections.BlobSigningTTL)
	}
	if !given["require-signatures"] {
		s.RequireSignatures = c.SigningRequired()
		if s.RequireSignatures && len(s.SigningKey) == 0 {
			return errors.New("Collections.BlobSigning is on (the Arvados default) but Collections.BlobSigningKey is empty")
		}
	}
	return nil
}

// fillTrash fills in the trash and pull settings of s not in given.
func (c *Cluster) fillTrash(s *ServerSettings, given map[string]bool) error {
	col := c.Collections
	if !given["blob-trash"] {
		s.Trash = c.TrashEnabled()
	}
	if !given["blob-trash-lifetime"] && col.BlobTrashLifetime != nil {
		s.TrashLifetime = time.Duration(*col.BlobTrashLifetime)
	}
	if !given["blob-trash-check-interval"] && col.BlobTrashCheckInterval != nil {
		s.TrashCheckInterval = time.Duration(*col.BlobTrashCheckInterval)
	}
	if !given["blob-trash-concurrency"] && col.BlobTrashConcurrency != nil {
		s.TrashConcurrency = *col.BlobTrashConcurrency
	}
	if !given["blob-replicate-concurrency"] && col.BlobReplicateConcurrency != nil {
		if *col.BlobReplicateConcurrency < 1 {
			return fmt.Errorf("Collections.BlobReplicateConcurrency is %d, but this server cannot turn pulls off; give at least 1", *col.BlobReplicateConcurrency)
		}
		s.PullConcurrency = *col.BlobReplicateConcurrency
	}
	return nil
}

// tlsFor returns the certificate and key files ep serves when its URL
// is https, and "" when it is http.
func (c *Cluster) tlsFor(ep Endpoint) (cert, key string, err error) {
	if !ep.TLS {
		return "", "", nil
	}
	if cert, key, err = c.TLSFiles(); err != nil {
		return "", "", fmt.Errorf("%s is https: %w", ep.InternalURL, err)
	}
	return cert, key, nil
}

// logLevel maps an Arvados SystemLogs.LogLevel (panic, fatal, error,
// warn, warning, info, debug, trace) to a slog level name.
func logLevel(l string) string {
	switch strings.ToLower(l) {
	case "trace":
		return "debug"
	case "panic", "fatal":
		return "error"
	case "warning":
		return "warn"
	}
	return l
}

// StoreConfig turns s into a keepstore configuration, translating the
// Arvados meanings of 0 in the trash settings into keepstore's. Its
// errors name keep server's flags.
func (s *ServerSettings) StoreConfig() (keepstore.Config, error) {
	switch {
	case s.TrashLifetime < 0 || s.TrashCheckInterval < 0:
		return keepstore.Config{}, errors.New("--blob-trash-lifetime and --blob-trash-check-interval cannot be negative")
	case s.TrashConcurrency < 0:
		return keepstore.Config{}, errors.New("--blob-trash-concurrency cannot be negative")
	case s.PullConcurrency < 1:
		return keepstore.Config{}, fmt.Errorf("--blob-replicate-concurrency %d: want at least 1", s.PullConcurrency)
	}
	never := func(d time.Duration) time.Duration { // 0 -> keepstore's "none"
		if d == 0 {
			return -1
		}
		return d
	}
	return keepstore.Config{
		Volumes:               s.Volumes,
		SigningKey:            s.SigningKey,
		SigningTTL:            s.SigningTTL,
		RequireSignatures:     s.RequireSignatures,
		SystemToken:           s.SystemToken,
		ManagementToken:       s.ManagementToken,
		DisableTrash:          !s.Trash || s.TrashConcurrency == 0,
		TrashLifetime:         never(s.TrashLifetime),
		TrashCheckInterval:    never(s.TrashCheckInterval),
		TrashConcurrency:      s.TrashConcurrency,
		PullConcurrency:       s.PullConcurrency,
		MaxConcurrentRequests: s.MaxRequests,
	}, nil
}

// ProxySettings are the settings of a keep proxy that an Arvados
// cluster configuration can give, in the terms of keep proxy's flags.
type ProxySettings struct {
	Listen          string // host:port
	TLSCert, TLSKey string // files; both "" for plain HTTP
	InternalURL     string // the InternalURLs entry served, with a configuration
	Registry        string // the token registry's host[:port], or ""
	RegistryFrom    string // where Registry came from, when not from a flag
	AnyToken        bool   // every token accepted, no registry asked
	// ManagementToken is read from the configuration only and not
	// enforced yet.
	ManagementToken string
}

// FillProxy fills in p from the cluster's settings for the keepproxy
// ep (see Proxy), leaving alone each setting whose keep proxy flag is
// in given ("listen", "tls-cert"). Without a registry or AnyToken, the
// registry is the cluster's API server (ControllerHost), as Arvados
// keepproxy asks it.
func (c *Cluster) FillProxy(p *ProxySettings, ep *Endpoint, given map[string]bool) error {
	p.InternalURL, p.ManagementToken = ep.InternalURL, c.ManagementToken
	if p.Registry == "" && !p.AnyToken {
		host, err := c.ControllerHost()
		if err != nil {
			return err
		}
		if host != "" {
			p.Registry, p.RegistryFrom = host, "Services.Controller.ExternalURL"
		}
	}
	if !given["listen"] {
		p.Listen = ep.Listen
	}
	if !given["tls-cert"] {
		cert, key, err := c.tlsFor(*ep)
		if err != nil {
			return err
		}
		if cert != "" {
			p.TLSCert, p.TLSKey = cert, key
		}
	}
	return nil
}

// ReadFile reads the configuration file at path and returns the
// cluster's settings (the only cluster in it when clusterID is ""). Its
// errors do not repeat the path, which the caller's message names.
func ReadFile(path, clusterID string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, err
	}
	_, c, err := Load(data, clusterID)
	return c, err
}
