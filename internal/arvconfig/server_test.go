package arvconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/dirvolume"
)

// serverConfig configures every setting keep server reads, for one
// keepstore at https://h:1/.
const serverConfig = `
Clusters:
  zzzzz:
    SystemRootToken: sys
    ManagementToken: mgmt
    API: {MaxConcurrentRequests: 7}
    SystemLogs: {LogLevel: trace}
    Collections: {BlobSigningKey: key, BlobSigningTTL: 1h, BlobTrash: false, BlobTrashLifetime: 0, BlobTrashCheckInterval: 2h,
      BlobTrashConcurrency: 2, BlobReplicateConcurrency: 3}
    TLS: {Certificate: "file:///c.pem", Key: "file:///k.pem"}
    Services: {Keepstore: {InternalURLs: {"https://h:1/": {}}}}
    Volumes:
      zzzzz-nyw5e-000000000000000: {Driver: Directory, DriverParameters: {Root: /d}, Replication: 3, StorageClasses: {hot: true}}
`

// everyServerFlag names every keep server flag whose setting the
// configuration can give.
var everyServerFlag = []string{"listen", "signing-key-file", "signing-ttl", "require-signatures", "system-token-file", "max-requests",
	"tls-cert", "log-level", "volume", "management-token-file", "blob-trash", "blob-trash-lifetime", "blob-trash-check-interval",
	"blob-trash-concurrency", "blob-replicate-concurrency"}

// TestFillServer: settings come from the configuration unless a flag
// gave them, with Arvados' meanings, and a configuration keep server
// cannot serve is an error naming the setting.
func TestFillServer(t *testing.T) {
	flagged := ServerSettings{Listen: "l", SigningKey: []byte("flagkey"), SigningTTL: time.Minute, SystemToken: "flagsys", MaxRequests: 1,
		TLSCert: "c", TLSKey: "k", LogLevel: "warn", Volumes: []keepstore.VolumeConfig{{Path: "/flag"}},
		ManagementToken: "flagmgmt", Trash: true, TrashLifetime: time.Minute, TrashCheckInterval: time.Second, TrashConcurrency: 9, PullConcurrency: 8}
	withURL := flagged
	withURL.InternalURL = "https://h:1/"
	// edit replaces old by new in serverConfig.
	edit := func(old, new string) string {
		if !strings.Contains(serverConfig, old) {
			t.Fatalf("serverConfig lacks %q", old)
		}
		return strings.Replace(serverConfig, old, new, 1)
	}
	noRoot := edit("DriverParameters: {Root: /d}", "DriverParameters: {}")
	tests := []struct {
		name   string
		config string // "" means serverConfig
		given  []string
		start  ServerSettings // the settings as the flags left them
		want   ServerSettings
		err    string // the error wanted, instead of want
	}{
		{name: "every setting from the file", start: ServerSettings{Trash: true, TrashLifetime: time.Hour, PullConcurrency: 4},
			want: ServerSettings{Listen: "h:1", SigningKey: []byte("key"), SigningTTL: time.Hour, RequireSignatures: true, SystemToken: "sys",
				MaxRequests: 7, TLSCert: "/c.pem", TLSKey: "/k.pem", LogLevel: "debug", ManagementToken: "mgmt", InternalURL: "https://h:1/",
				Trash: false, TrashLifetime: 0, TrashCheckInterval: 2 * time.Hour, TrashConcurrency: 2, PullConcurrency: 3,
				Volumes: []keepstore.VolumeConfig{{ID: "zzzzz-nyw5e-000000000000000", Params: dirvolume.Params{Root: "/d"}, Replication: 3, Classes: []string{"hot"}}}}},
		{name: "every flag given", given: everyServerFlag, start: flagged, want: withURL},
		{name: "pulls off", config: edit("BlobReplicateConcurrency: 3", "BlobReplicateConcurrency: 0"), err: "cannot turn pulls off"},
		{name: "pulls off, flag given", config: edit("BlobReplicateConcurrency: 3", "BlobReplicateConcurrency: 0"), given: everyServerFlag, start: flagged, want: withURL},
		{name: "signing on, no key", config: edit("BlobSigningKey: key", "BlobSigningKey: \"\""),
			err: "Collections.BlobSigning is on (the Arvados default) but Collections.BlobSigningKey is empty"},
		{name: "signing on, key from a flag", config: edit("BlobSigningKey: key", "BlobSigningKey: \"\""), given: everyServerFlag, start: flagged, want: withURL},
		{name: "no volume here", config: edit("StorageClasses: {hot: true}", "StorageClasses: {hot: true}, AccessViaHosts: {\"http://other:1/\": {}}"),
			err: "no volume is for https://h:1/"},
		{name: "Directory without Root", config: noRoot, err: "volume zzzzz-nyw5e-000000000000000: no DriverParameters.Root for a Directory volume"},
		{name: "Directory without Root, --volume given", config: noRoot, given: everyServerFlag, start: flagged, want: withURL},
		{name: "unknown driver", config: edit("Driver: Directory", "Driver: Tape"), err: `volume zzzzz-nyw5e-000000000000000: driver "Tape" is not supported`},
		{name: "https without TLS files", config: edit(`Certificate: "file:///c.pem", `, ""), err: "https://h:1/ is https: TLS.Certificate is not set"},
		{name: "http needs no TLS files", config: strings.Replace(edit(`TLS: {Certificate: "file:///c.pem", Key: "file:///k.pem"}`, "TLS: {}"),
			"https://h:1/", "http://h:1/", 1), given: []string{"volume"}, start: ServerSettings{TLSCert: "c", TLSKey: "k"},
			want: ServerSettings{Listen: "h:1", InternalURL: "http://h:1/", TLSCert: "c", TLSKey: "k", SigningKey: []byte("key"), SigningTTL: time.Hour,
				RequireSignatures: true, SystemToken: "sys", ManagementToken: "mgmt", MaxRequests: 7, LogLevel: "debug",
				TrashCheckInterval: 2 * time.Hour, TrashConcurrency: 2, PullConcurrency: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ks := loadKeepstore(t, tt.config)
			s := tt.start
			err := c.FillServer(&s, ks, flagSet(tt.given))
			if errorAsWanted(t, "FillServer", err, tt.err) && fmt.Sprint(s) != fmt.Sprint(tt.want) {
				t.Errorf("FillServer:\n%+v\nwant\n%+v", s, tt.want)
			}
		})
	}
}

// flagSet returns names as the set of flags given.
func flagSet(names []string) map[string]bool {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	return set
}

// errorAsWanted reports an error of call unless it contains want, or
// any error when want is ""; it returns whether the call succeeded as
// wanted, so that its result is to be checked.
func errorAsWanted(t *testing.T, call string, err error, want string) bool {
	t.Helper()
	switch {
	case want != "":
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", call, err, want)
		}
		return false
	case err != nil:
		t.Errorf("%s: %v", call, err)
		return false
	}
	return true
}

// loadKeepstore loads config (serverConfig if "") and picks its only
// keepstore.
func loadKeepstore(t *testing.T, config string) (*Cluster, *Keepstore) {
	t.Helper()
	if config == "" {
		config = serverConfig
	}
	_, c, err := Load([]byte(config), "")
	if err != nil {
		t.Fatal(err)
	}
	var self string
	for u := range c.Services.Keepstore.InternalURLs {
		self = u
	}
	ks, err := c.Self(self, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, ks
}

// TestServerLogLevel: Arvados' log levels become slog's.
func TestServerLogLevel(t *testing.T) {
	for _, tt := range []struct{ arvados, want string }{
		{"trace", "debug"}, {"debug", "debug"}, {"info", "info"}, {"warn", "warn"}, {"Warning", "warn"},
		{"error", "error"}, {"fatal", "error"}, {"PANIC", "error"},
	} {
		c, ks := loadKeepstore(t, strings.Replace(serverConfig, "LogLevel: trace", "LogLevel: "+tt.arvados, 1))
		var s ServerSettings
		if err := c.FillServer(&s, ks, nil); err != nil || s.LogLevel != tt.want {
			t.Errorf("LogLevel %s: %q, %v; want %q", tt.arvados, s.LogLevel, err, tt.want)
		}
	}
}

// TestStoreConfig: Arvados' zeros in the trash settings (delete at
// once, never sweep, no trash workers) become keepstore's, and
// impossible values are refused.
func TestStoreConfig(t *testing.T) {
	tests := []struct {
		name string
		s    ServerSettings
		want string // the keepstore settings, or the error
	}{
		{"zeros", ServerSettings{Trash: true, PullConcurrency: 1}, "lifetime -1ns, check -1ns, trash off true, pulls 1"},
		{"trash on", ServerSettings{Trash: true, TrashLifetime: time.Hour, TrashCheckInterval: time.Minute, TrashConcurrency: 2, PullConcurrency: 3},
			"lifetime 1h0m0s, check 1m0s, trash off false, pulls 3"},
		{"blob-trash off", ServerSettings{TrashConcurrency: 2, PullConcurrency: 3}, "lifetime -1ns, check -1ns, trash off true, pulls 3"},
		{"negative lifetime", ServerSettings{TrashLifetime: -time.Hour, PullConcurrency: 1}, "--blob-trash-lifetime and --blob-trash-check-interval cannot be negative"},
		{"negative interval", ServerSettings{TrashCheckInterval: -time.Hour, PullConcurrency: 1}, "--blob-trash-lifetime and --blob-trash-check-interval cannot be negative"},
		{"negative workers", ServerSettings{TrashConcurrency: -1, PullConcurrency: 1}, "--blob-trash-concurrency cannot be negative"},
		{"no pulls", ServerSettings{}, "--blob-replicate-concurrency 0: want at least 1"},
	}
	for _, tt := range tests {
		cfg, err := tt.s.StoreConfig()
		got := fmt.Sprintf("lifetime %v, check %v, trash off %v, pulls %d", cfg.TrashLifetime, cfg.TrashCheckInterval, cfg.DisableTrash, cfg.PullConcurrency)
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestFillProxy: the proxy's address and TLS come from the file unless
// a flag gave them, and its registry is the cluster's API server unless
// --registry or --any-token says otherwise.
func TestFillProxy(t *testing.T) {
	const config = `
Clusters:
  zzzzz:
    ManagementToken: mgmt
    TLS: {Certificate: "file:///c.pem", Key: "file:///k.pem"}
    Services:
      Keepproxy: {InternalURLs: {"https://proxy:1/": {}}}
      Controller: {ExternalURL: "https://ctrl.example:8443/"}
`
	fromFile := ProxySettings{Listen: "proxy:1", TLSCert: "/c.pem", TLSKey: "/k.pem", InternalURL: "https://proxy:1/",
		Registry: "ctrl.example:8443", RegistryFrom: "Services.Controller.ExternalURL", ManagementToken: "mgmt"}
	tests := []struct {
		name   string
		config string // "" means config
		given  []string
		start  ProxySettings
		want   ProxySettings
		err    string
	}{
		{name: "from the file", want: fromFile},
		{name: "flags given", given: []string{"listen", "tls-cert"}, start: ProxySettings{Listen: "l", TLSCert: "c", TLSKey: "k", Registry: "reg"},
			want: ProxySettings{Listen: "l", TLSCert: "c", TLSKey: "k", Registry: "reg", InternalURL: "https://proxy:1/", ManagementToken: "mgmt"}},
		{name: "any token", start: ProxySettings{AnyToken: true},
			want: ProxySettings{Listen: "proxy:1", TLSCert: "/c.pem", TLSKey: "/k.pem", InternalURL: "https://proxy:1/", AnyToken: true, ManagementToken: "mgmt"}},
		{name: "no controller", config: strings.Replace(config, `ExternalURL: "https://ctrl.example:8443/"`, "", 1),
			want: ProxySettings{Listen: "proxy:1", TLSCert: "/c.pem", TLSKey: "/k.pem", InternalURL: "https://proxy:1/", ManagementToken: "mgmt"}},
		{name: "controller over http", config: strings.Replace(config, "https://ctrl", "http://ctrl", 1), err: "is not https"},
		{name: "https without TLS files", config: strings.Replace(config, `Key: "file:///k.pem"`, "", 1), err: "https://proxy:1/ is https: TLS.Key is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := tt.config
			if text == "" {
				text = config
			}
			_, c, err := Load([]byte(text), "")
			if err != nil {
				t.Fatal(err)
			}
			ep, err := c.Proxy("https://proxy:1", nil)
			if err != nil {
				t.Fatal(err)
			}
			p := tt.start
			err = c.FillProxy(&p, ep, flagSet(tt.given))
			if errorAsWanted(t, "FillProxy", err, tt.err) && p != tt.want {
				t.Errorf("FillProxy:\n%+v\nwant\n%+v", p, tt.want)
			}
		})
	}
}

// TestReadFile: a file is read as Load reads its text, and an error
// reading it does not repeat its path, which the caller names.
func TestReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yml")
	if _, err := ReadFile(path, ""); err == nil || strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte(serverConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := ReadFile(path, "zzzzz"); err != nil || c.SystemRootToken != "sys" {
		t.Errorf("ReadFile = %+v, %v", c, err)
	}
	if _, err := ReadFile(path, "other"); err == nil || !strings.Contains(err.Error(), `does not configure cluster "other"`) {
		t.Errorf("another cluster: %v", err)
	}
}
