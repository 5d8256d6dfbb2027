package keepclient

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Service types with special meaning. Any other type counts as non-disk
// (a proxy), and types starting with "gateway:" are used only when a
// locator's +K hint names them.
const (
	TypeDisk    = "disk"
	TypeProxy   = "proxy"
	gatewayType = "gateway:"
)

// Service is one Keep block service, as listed by the Arvados
// keep_services/accessible endpoint.
type Service struct {
	UUID     string `json:"uuid"`
	Host     string `json:"service_host"`
	Port     int    `json:"service_port"`
	TLS      bool   `json:"service_ssl_flag"`
	Type     string `json:"service_type"`
	ReadOnly bool   `json:"read_only"`
}

// URL returns the service's root URL, with no trailing slash.
func (s Service) URL() string {
	scheme := "http"
	if s.TLS {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
}

// IsDisk reports whether s is a plain block server (type "disk").
func (s Service) IsDisk() bool { return s.Type == TypeDisk }

// IsGateway reports whether s is used only when a locator names it.
func (s Service) IsGateway() bool { return strings.HasPrefix(s.Type, gatewayType) }

// String names the service for messages: its uuid, or its URL if it has none.
func (s Service) String() string {
	if s.UUID != "" {
		return s.UUID
	}
	return s.URL()
}

// ServiceList is the JSON document served by keep_services/accessible.
type ServiceList struct {
	Kind  string    `json:"kind"`
	Items []Service `json:"items"`
}

// ParseServices decodes a keep_services/accessible JSON document.
func ParseServices(data []byte) ([]Service, error) {
	var l ServiceList
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("not a keep services list: %w", err)
	}
	for i, s := range l.Items {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("keep services list: item %d (%q): %w", i, s.UUID, err)
		}
	}
	return l.Items, nil
}

// Validate reports whether s names exactly one host and port: a host
// name (letters, digits, '.', '-' and '_') or an IP address, and a port
// from 1 to 65535. Nothing else can turn a service's URL into one naming
// another host, a path or user info.
func (s Service) Validate() error {
	if s.Port <= 0 || s.Port > 65535 || !validHost(s.Host) {
		return fmt.Errorf("bad host or port %q:%d", s.Host, s.Port)
	}
	return nil
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// LoadServices reads a keep_services/accessible JSON file.
func LoadServices(path string) ([]Service, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	svcs, err := ParseServices(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return svcs, nil
}

// MarshalServices encodes services as a keep_services/accessible document.
func MarshalServices(svcs []Service) ([]byte, error) {
	return json.MarshalIndent(ServiceList{Kind: "arvados#keepServiceList", Items: svcs}, "", "  ")
}

// ProbeOrder returns services sorted into the Arvados rendezvous order for
// the block with the given hash: by md5(hash + last 15 characters of the
// uuid), heaviest first. Ties keep the input order. svcs is not modified.
func ProbeOrder(hash string, svcs []Service) []Service {
	order := NewProber(svcs).Order(nil, []byte(hash))
	out := make([]Service, len(order))
	for i, k := range order {
		out[i] = svcs[k]
	}
	return out
}

// A Prober computes the probe orders of many blocks over one list of
// services without allocating, for balancing millions of blocks. It is
// not safe for concurrent use.
type Prober struct {
	suffixes [][]byte // the last 15 characters of each uuid
	buf      []byte
	ws       []probeWeight
}

type probeWeight struct {
	hi, lo uint64 // the md5 sum, big-endian: compared as its hex digits are
	i      int
}

// NewProber returns a Prober over svcs.
func NewProber(svcs []Service) *Prober {
	p := &Prober{suffixes: make([][]byte, len(svcs)), ws: make([]probeWeight, len(svcs))}
	for i, s := range svcs {
		suffix := s.UUID
		if len(suffix) > 15 {
			suffix = suffix[len(suffix)-15:]
		}
		p.suffixes[i] = []byte(suffix)
	}
	return p
}

// Order appends to dst the indexes of the services in the probe order of
// the block whose hash (32 hex digits) is given, as ProbeOrder sorts
// them, and returns it.
func (p *Prober) Order(dst []int, hash []byte) []int {
	for i, suffix := range p.suffixes {
		p.buf = append(append(p.buf[:0], hash...), suffix...)
		sum := md5.Sum(p.buf)
		p.ws[i] = probeWeight{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:]), i}
	}
	// Heaviest first; ties keep the input order.
	slices.SortStableFunc(p.ws, func(a, b probeWeight) int {
		if c := cmp.Compare(b.hi, a.hi); c != 0 {
			return c
		}
		return cmp.Compare(b.lo, a.lo)
	})
	for _, w := range p.ws {
		dst = append(dst, w.i)
	}
	return dst
}
