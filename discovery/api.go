package discovery

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/keepproject/keep/keepclient"
)

const (
	// fetchTimeout bounds one request to the API server, as in the Go SDK;
	// the caller's context may bound it further.
	fetchTimeout = time.Minute

	accessiblePath = "/arvados/v1/keep_services/accessible"

	// maxListSize bounds the answer we read: a list of thousands of
	// services is a few hundred KiB.
	maxListSize = 16 << 20
)

// apiSource asks an Arvados API server for keep_services/accessible.
type apiSource struct {
	desc   string
	url    string
	token  string
	client *http.Client
}

func newAPISource(cfg Config, s settings, host setting) source {
	hostport, err := apiHostPort(host.value)
	if err != nil {
		return errSource{desc: keyAPIHost + host.in(), err: err}
	}
	desc := "API server " + hostport
	if host.from != "" {
		desc += " (" + keyAPIHost + host.in() + ")"
	}
	token := s.get(keyToken).value
	if token == "" {
		return errSource{desc: desc, err: fmt.Errorf("%s is set but %s is not", keyAPIHost, keyToken)}
	}
	client := cfg.HTTPClient
	if client == nil {
		client = newHTTPClient(s.insecure())
	}
	u := url.URL{Scheme: "https", Host: host.value, Path: accessiblePath}
	return apiSource{desc: desc, url: u.String(), token: token, client: client}
}

// newHTTPClient returns the client used when Config.HTTPClient is nil.
// It keeps no idle connections: it is used once per Refresh at most, and
// an idle connection would outlive the Resolver, which has no Close.
func newHTTPClient(insecure bool) *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: fetchTimeout,
		DisableKeepAlives:     true,
		ForceAttemptHTTP2:     true,
	}
	if insecure {
		// The user asked for it with ARVADOS_API_HOST_INSECURE, typically
		// for a test cluster with a self-signed certificate.
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	return &http.Client{Transport: t, Timeout: fetchTimeout}
}

func (a apiSource) String() string { return a.desc }

func (a apiSource) fetch(ctx context.Context) ([]keepclient.Service, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return nil, a.errorf("%v", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		// The *url.Error adds only the URL, which the description names.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			return nil, a.errorf("%v (if its certificate is from a private authority, set SSL_CERT_FILE to that authority's certificate; %s=1 skips the check, for tests only)", err, keyInsecure)
		}
		return nil, a.errorf("%v (check %s, or pass --services FILE)", err, keyAPIHost)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg := resp.Status
		if line := a.firstLine(resp.Body); line != "" {
			msg += ": " + line
		}
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			msg += " (check " + keyToken + ")"
		}
		return nil, a.errorf("GET %s: %s", accessiblePath, msg)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxListSize+1))
	if err != nil {
		return nil, a.errorf("reading answer: %v", err)
	}
	if len(data) > maxListSize {
		return nil, a.errorf("answer is larger than %d bytes", maxListSize)
	}
	svcs, err := keepclient.ParseServices(data)
	if err != nil {
		return nil, a.errorf("%v", err)
	}
	return svcs, nil
}

func (a apiSource) errorf(format string, args ...any) error {
	return fmt.Errorf("keep services from %s: %s", a.desc, fmt.Sprintf(format, args...))
}

// firstLine returns the start of an error answer's first line, made safe
// for a one-line message: the token is masked in case the server echoes
// it, control characters are dropped and the length is capped.
func (a apiSource) firstLine(body io.Reader) string {
	const maxRunes = 200
	line, _ := bufio.NewReader(io.LimitReader(body, 4096)).ReadString('\n')
	line = strings.TrimSpace(line)
	if a.token != "" {
		line = strings.ReplaceAll(line, a.token, "***")
	}
	line = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, line)
	if r := []rune(line); len(r) > maxRunes {
		line = string(r[:maxRunes]) + "..."
	}
	return line
}
