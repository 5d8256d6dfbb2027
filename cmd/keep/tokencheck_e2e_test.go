package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/apiauth/apiauthtest"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// Tokens of the fake registry in these tests; "secret" must never be
// logged.
const (
	tcReadToken  = "tc-read-secret"
	tcWriteToken = "tc-write-secret"
	tcDownToken  = "tc-down-secret" // the registry answers 503 for it
)

// tcRegistry starts a fake token registry and returns it with an
// environment for keep processes that trusts its certificate (through
// SSL_CERT_FILE, as a deployment with a private authority does).
func tcRegistry(t *testing.T) (*apiauthtest.Registry, []string) {
	reg := apiauthtest.New(t)
	reg.Set(tcReadToken, apiauth.ScopeRead)
	reg.Set(tcWriteToken, apiauth.ScopeWrite)
	reg.SetDown(tcDownToken)
	return reg, append(proctest.Env(t), "SSL_CERT_FILE="+reg.CertFile(t))
}

// tcExpect sends a request with tok and fails unless it gets want.
func tcExpect(t *testing.T, method, url, tok string, body []byte, want int, hdr ...string) string {
	t.Helper()
	code, got, _ := cfgDo(t, http.DefaultClient, method, url, tok, body, hdr...)
	if code != want {
		t.Errorf("%s %s with %q: %d %q, want %d", method, url, tok, code, strings.TrimSpace(got), want)
	}
	return got
}

// TestE2ETokenRegistry runs block servers and a proxy with --registry
// in front of a fake registry: both refuse an unknown token (401), let
// a read token GET but not PUT (403) and a write token do both, answer
// 502 while the registry cannot say; servers still pull from each
// other with the system token, which the registry is never asked
// about; a proxy with neither --registry nor --any-token refuses to
// start.
func TestE2ETokenRegistry(t *testing.T) {
	reg, env := tcRegistry(t)
	sysFile, _ := srvTokenFiles(t)
	var svcs []keepclient.Service
	var dirs []string
	for i := range 2 {
		dir := t.TempDir()
		svc, _ := startServer(t, env, i, "--volume", dir, "--registry", reg.Host(), "--system-token-file", sysFile)
		svcs, dirs = append(svcs, svc), append(dirs, dir)
	}
	data, _ := keepclient.MarshalServices(svcs)
	svcFile := filepath.Join(t.TempDir(), "services.json")
	if err := os.WriteFile(svcFile, data, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("proxy without a registry", func(t *testing.T) {
		_, stderr, err := proctest.Run(t, env, nil, "proxy", "--listen", "127.0.0.1:0", "--services", svcFile)
		line := strings.TrimSuffix(stderr, "\n")
		if exitCode(err) != 2 || strings.Contains(line, "\n") || !strings.Contains(line, "--registry") || !strings.Contains(line, "--any-token") {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and one line naming --registry and --any-token", exitCode(err), stderr)
		}
	})

	p := startProxyProcess(t, env, "--services", svcFile, "--registry", reg.Host())
	block := []byte("written through a proxy that checks tokens")
	hash := fmt.Sprintf("%x", md5.Sum(block))
	t.Run("proxy", func(t *testing.T) {
		url := p.base + "/" + hash
		tcExpect(t, "PUT", url, "zzz", block, 401)
		tcExpect(t, "PUT", url, tcReadToken, block, 403)
		tcExpect(t, "PUT", url, tcDownToken, block, 502)
		tcExpect(t, "PUT", url, tcWriteToken, block, 200, "X-Keep-Desired-Replicas", "2")
		for _, d := range dirs {
			if !cfgOn(d, hash) {
				t.Errorf("block not on the server with volume %s", d)
			}
		}
		tcExpect(t, "GET", url, "zzz", nil, 401)
		tcExpect(t, "GET", url, "", nil, 401)
		if got := tcExpect(t, "GET", url, tcReadToken, nil, 200); got != string(block) {
			t.Errorf("GET with a read token: %q", got)
		}
		tcExpect(t, "HEAD", url, tcReadToken, nil, 200)
		tcExpect(t, "GET", url, tcWriteToken, nil, 200)
		tcExpect(t, "GET", url, tcDownToken, nil, 502)
	})

	srv0 := svcs[0].URL()
	other := []byte("written to one server, then pulled by the other")
	ohash := fmt.Sprintf("%x", md5.Sum(other))
	t.Run("server", func(t *testing.T) {
		tcExpect(t, "PUT", srv0+"/"+ohash, "zzz", other, 401)
		tcExpect(t, "PUT", srv0+"/"+ohash, tcReadToken, other, 403)
		tcExpect(t, "PUT", srv0+"/"+ohash, tcDownToken, other, 502)
		tcExpect(t, "PUT", srv0+"/"+ohash, tcWriteToken, other, 200)
		tcExpect(t, "GET", srv0+"/"+ohash, "zzz", nil, 401)
		tcExpect(t, "GET", srv0+"/"+ohash, tcReadToken, nil, 200)
		tcExpect(t, "GET", srv0+"/index", tcWriteToken, nil, 403) // the system token's, as before
		tcExpect(t, "GET", srv0+"/index", cfgSystemToken, nil, 200)
	})

	t.Run("pull between servers", func(t *testing.T) {
		if cfgOn(dirs[1], ohash) {
			t.Fatal("the second server has the block before the pull")
		}
		list, _ := json.Marshal([]protocol.PullItem{{Locator: locator.New(other).String(), Servers: []string{srv0}}})
		tcExpect(t, "PUT", svcs[1].URL()+"/pull", cfgSystemToken, list, 200)
		waitUntil(t, "the second server has pulled the block", func() bool { return cfgOn(dirs[1], ohash) })
		if got := tcExpect(t, "GET", svcs[1].URL()+"/"+ohash, tcReadToken, nil, 200); got != string(other) {
			t.Errorf("pulled block read back: %q", got)
		}
	})

	if n := reg.Asked(cfgSystemToken); n != 0 {
		t.Errorf("the registry was asked %d times about the system token", n)
	}
	logs := p.Log().String()
	if !strings.Contains(logs, `tokens="registry `+reg.Host()+`"`) || strings.Contains(logs, "secret") {
		t.Errorf("the proxy's log does not name its registry, or shows a token:\n%s", logs)
	}
}

// TestE2EProxyRegistryFromConfig: with --config and no --registry, the
// proxy asks the cluster's API server, Services.Controller.ExternalURL,
// about tokens; an http URL there is refused.
func TestE2EProxyRegistryFromConfig(t *testing.T) {
	reg, env := tcRegistry(t)
	svcFile, dirs, _ := startServers(t, env, 2)
	c := newCfgCluster(t)
	controller := "    Services:\n      Controller:\n        ExternalURL: \"https://" + reg.Host() + "/\"\n"
	p := startProxyProcess(t, env, "--config", c.write(t, "    Services:\n", controller), "--services", svcFile)
	block := []byte("through a proxy whose registry is the controller")
	hash := fmt.Sprintf("%x", md5.Sum(block))
	tcExpect(t, "PUT", p.base+"/"+hash, "zzz", block, 401)
	tcExpect(t, "PUT", p.base+"/"+hash, tcReadToken, block, 403)
	tcExpect(t, "PUT", p.base+"/"+hash, tcWriteToken, block, 200, "X-Keep-Desired-Replicas", "2")
	for _, d := range dirs {
		if !cfgOn(d, hash) {
			t.Errorf("block not on the server with volume %s", d)
		}
	}
	if logs := p.Log().String(); !strings.Contains(logs, `tokens="registry `+reg.Host()+` (Services.Controller.ExternalURL)"`) {
		t.Errorf("the proxy's log does not say where its registry came from:\n%s", logs)
	}

	plain := strings.Replace(controller, "https://", "http://", 1)
	path := c.write(t, "    Services:\n", plain)
	_, stderr, err := proctest.Run(t, env, nil, "proxy", "--config", path, "--services", svcFile)
	if exitCode(err) != 1 || !strings.Contains(stderr, "Services.Controller.ExternalURL") || !strings.Contains(stderr, "not https") {
		t.Errorf("proxy with an http controller: exit %d, stderr:\n%s", exitCode(err), stderr)
	}
}

// TestTokenFlags: --registry takes host[:port] and contradicts
// --any-token; a proxy with neither refuses to start in one line; the
// help of both commands says where the CA comes from.
func TestTokenFlags(t *testing.T) {
	dir := t.TempDir()
	svcFile := filepath.Join(dir, "services.json")
	for _, tt := range []struct {
		cmd  func(context.Context, []string, io.Writer, io.Writer) error
		args []string
		want string
	}{
		{runProxy, []string{"--services", svcFile}, "no token registry: give --registry HOST[:PORT]"},
		{runProxy, []string{"--services", svcFile, "--registry", "r.example", "--any-token"}, "--registry and --any-token contradict each other"},
		{runProxy, []string{"--services", svcFile, "--registry", "https://r.example"}, "without a scheme"},
		{runServer, []string{"--volume", dir, "--registry", "r.example/path"}, "not a host[:port]"},
	} {
		var stderr bytes.Buffer
		if err := tt.cmd(context.Background(), tt.args, io.Discard, &stderr); !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%q: %v, stderr:\n%s\nwant a usage error saying %q", tt.args, err, &stderr, tt.want)
		}
	}
	for name, cmd := range map[string]func(context.Context, []string, io.Writer, io.Writer) error{"proxy": runProxy, "server": runServer} {
		var help bytes.Buffer
		cmd(context.Background(), []string{"--help"}, io.Discard, &help)
		for _, want := range []string{"-registry HOST[:PORT]", "SSL_CERT_FILE", "read token", "write token"} {
			if !strings.Contains(help.String(), want) {
				t.Errorf("keep %s --help does not mention %q", name, want)
			}
		}
		if name == "proxy" && !strings.Contains(help.String(), "-any-token") {
			t.Errorf("keep proxy --help does not mention --any-token")
		}
	}
}
