package discovery

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keepproject/keep/keepclient"
)

// The Arvados client settings this package reads.
const (
	keyKeepServices = "ARVADOS_KEEP_SERVICES"
	keyAPIHost      = "ARVADOS_API_HOST"
	keyToken        = "ARVADOS_API_TOKEN"
	keyInsecure     = "ARVADOS_API_HOST_INSECURE"
	// keyKeepToken is keep's own fallback for ARVADOS_API_TOKEN.
	keyKeepToken = "KEEP_TOKEN"
)

// settings is the environment merged over settings.conf, key by key.
type settings struct {
	getenv   func(string) string
	home     string            // "" if unknown
	confPath string            // "" if home is unknown
	conf     map[string]string // nil if settings.conf is missing or unreadable
	confErr  error             // why settings.conf could not be read, if it exists
}

// setting is one value and where it came from: from is "" for the
// environment, else the path of settings.conf.
type setting struct {
	value, from string
}

// in says where a setting came from, for messages: "" for the environment.
func (s setting) in() string {
	if s.from == "" {
		return ""
	}
	return " in " + s.from
}

func readSettings(cfg Config) settings {
	s := settings{getenv: cfg.Getenv, home: cfg.HomeDir}
	if s.getenv == nil {
		s.getenv = os.Getenv
	}
	if s.home == "" {
		// No home is not an error by itself: the other sources still work,
		// and the "not configured" message says so if it matters.
		s.home, _ = os.UserHomeDir()
	}
	if s.home == "" {
		return s
	}
	s.confPath = filepath.Join(s.home, ".config", "arvados", "settings.conf")
	data, err := os.ReadFile(s.confPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		s.confErr = pathErr(err)
	default:
		s.conf = parseSettings(string(data))
	}
	return s
}

// parseSettings reads KEY=value lines. Like the Arvados SDKs it is lenient:
// blank lines, # comments and lines without "=" are skipped.
func parseSettings(text string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m
}

// get returns the environment's value of key if it is non-empty, else
// settings.conf's.
func (s settings) get(key string) setting {
	if v := s.getenv(key); v != "" {
		return setting{value: v}
	}
	if v := s.conf[key]; v != "" {
		return setting{value: v, from: s.confPath}
	}
	return setting{}
}

func (s settings) insecure() bool {
	switch strings.ToLower(s.get(keyInsecure).value) {
	case "1", "yes", "true":
		return true
	}
	return false
}

// chooseSource applies the precedence order described in the package
// comment. Configuration mistakes become an errSource for the source that
// has them, so they are reported by Services and never skipped.
func chooseSource(cfg Config, s settings) source {
	if cfg.ServicesFile != "" {
		return fileSource{desc: "services file " + cfg.ServicesFile, path: cfg.ServicesFile}
	}
	ks := s.get(keyKeepServices)
	if ks.value == "" && s.confErr != nil {
		// settings.conf may hold any of the keys below; guessing would
		// risk using the wrong cluster.
		return errSource{desc: s.confPath, err: fmt.Errorf("%w (fix or remove it)", s.confErr)}
	}
	if ks.value != "" {
		desc := keyKeepServices + ks.in()
		svcs, err := parseKeepServices(ks.value)
		if err != nil {
			return errSource{desc: desc, err: err}
		}
		return staticSource{desc: desc, svcs: svcs}
	}
	if host := s.get(keyAPIHost); host.value != "" {
		return newAPISource(cfg, s, host)
	}
	path, err := defaultServicesFile(s.getenv("XDG_STATE_HOME"), s.home)
	unset := fmt.Sprintf("--services not given, %s and %s not set", keyKeepServices, keyAPIHost)
	if s.confPath != "" {
		unset += " (environment or " + s.confPath + ")"
	}
	if err != nil {
		return errSource{err: fmt.Errorf("%w: %s, and there is no default services file: %v (pass --services FILE)",
			ErrNotConfigured, unset, err)}
	}
	return fileSource{
		desc: "default services file " + path,
		path: path,
		missing: fmt.Errorf("%w: %s, and %s does not exist (run \"keep up\" or pass --services FILE)",
			ErrNotConfigured, unset, path),
		hint: ` (rerun "keep up" or pass --services FILE)`,
	}
}

// DefaultServicesFile returns where "keep up" writes the services of the
// local cluster it runs, and where discovery looks when nothing else is
// configured: $XDG_STATE_HOME/keep/services.json if XDG_STATE_HOME is an
// absolute path (relative ones are ignored, as the XDG spec says), else
// $HOME/.local/state/keep/services.json.
func DefaultServicesFile() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		home = ""
	}
	return defaultServicesFile(os.Getenv("XDG_STATE_HOME"), home)
}

func defaultServicesFile(xdgState, home string) (string, error) {
	if filepath.IsAbs(xdgState) {
		return filepath.Join(xdgState, "keep", "services.json"), nil
	}
	if home == "" {
		return "", errors.New("neither XDG_STATE_HOME nor HOME is set")
	}
	return filepath.Join(home, ".local", "state", "keep", "services.json"), nil
}

// parseKeepServices parses ARVADOS_KEEP_SERVICES. Unlike the Arvados SDKs,
// which log bad URLs and drop them, any bad URL is an error naming it: a
// silently shorter list means fewer replicas than the user asked for.
func parseKeepServices(v string) ([]keepclient.Service, error) {
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return nil, errors.New("set but lists no URLs")
	}
	var (
		svcs []keepclient.Service
		bad  []string
		seen = make(map[string]bool)
	)
	for i, f := range fields {
		svc, err := parseRootURL(f)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		if seen[svc.URL()] {
			bad = append(bad, fmt.Sprintf("%q: listed twice", f))
			continue
		}
		seen[svc.URL()] = true
		svc.UUID = fmt.Sprintf("00000-bi6l4-%015d", i)
		svc.Type = keepclient.TypeProxy
		svcs = append(svcs, svc)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s (want space-separated http:// or https:// root URLs)", strings.Join(bad, "; "))
	}
	return svcs, nil
}

// parseRootURL parses one absolute http or https root URL, with any
// trailing slashes trimmed. A path is refused because a Service cannot
// carry one.
func parseRootURL(raw string) (keepclient.Service, error) {
	var svc keepclient.Service
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return svc, fmt.Errorf("%q: %v", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return svc, fmt.Errorf("%q: not an http or https URL", raw)
	case u.Opaque != "" || u.Hostname() == "":
		return svc, fmt.Errorf("%q: no host", raw)
	case u.User != nil:
		return svc, fmt.Errorf("%q: user info is not allowed", raw)
	case u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return svc, fmt.Errorf("%q: has a path, query or fragment", raw)
	}
	svc.Host = u.Hostname()
	svc.TLS = u.Scheme == "https"
	switch p := u.Port(); {
	case p == "" && svc.TLS:
		svc.Port = 443
	case p == "":
		svc.Port = 80
	default:
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return svc, fmt.Errorf("%q: bad port %q", raw, p)
		}
		svc.Port = n
	}
	if err := svc.Validate(); err != nil {
		return svc, fmt.Errorf("%q: %v", raw, err)
	}
	return svc, nil
}

// apiHostPort checks ARVADOS_API_HOST, which is host or host:port, and
// returns it with the default port 443 added.
func apiHostPort(host string) (string, error) {
	u, err := url.Parse("https://" + host)
	if err != nil || u.Host != host || u.Hostname() == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("%q is not host or host:port", host)
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "443"), nil
	}
	return host, nil
}

// pathErr drops the *fs.PathError wrapping of err, for messages that
// already name the file.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
