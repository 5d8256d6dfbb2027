package arvconfig

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const config = `
Clusters:
  zzzzz:
    SystemRootToken: systemroottoken
    ManagementToken: mgmt
    API:
      MaxConcurrentRequests: 16
    SystemLogs:
      LogLevel: debug
    TLS:
      Certificate: file:///etc/arvados/tls.crt
      Key: /etc/arvados/tls.key
    Collections:
      BlobSigningKey: signingkey
      BlobSigningTTL: 336h
      BlobTrash: false
      BlobTrashLifetime: 2w
      BlobTrashCheckInterval: 86400
      BlobTrashConcurrency: 0
    Services:
      Keepstore:
        InternalURLs:
          "http://keep0.zzzzz.example:25107/": {}
          "http://keep1.zzzzz.example:25107/":
            ListenURL: "http://0.0.0.0:25108/"
      Keepproxy:
        InternalURLs:
          "https://proxy.zzzzz.example/": {}
    Volumes:
      zzzzz-nyw5e-000000000000000:
        Driver: Directory
        DriverParameters:
          Root: /mnt/keep0
        AccessViaHosts:
          "http://keep0.zzzzz.example:25107/": {}
        StorageClasses:
          default: true
          archive: false
      zzzzz-nyw5e-000000000000001:
        Driver: Directory
        DriverParameters: {Root: /mnt/shared}
        Replication: 2
        AccessViaHosts:
          "http://keep0.zzzzz.example:25107/": {ReadOnly: true}
          "http://keep1.zzzzz.example:25107/": {}
      zzzzz-nyw5e-000000000000002:
        Driver: Directory
        DriverParameters: {Root: /mnt/everyone}
      zzzzz-nyw5e-000000000000003:
        Driver: S3
        DriverParameters: {Bucket: blocks}
        AccessViaHosts:
          "http://keep1.zzzzz.example:25107": {}
`

func TestLoadAndSelf(t *testing.T) {
	id, c, err := Load([]byte(config), "")
	if err != nil {
		t.Fatal(err)
	}
	if id != "zzzzz" || c.SystemRootToken != "systemroottoken" || c.ManagementToken != "mgmt" || c.Collections.BlobSigningKey != "signingkey" ||
		time.Duration(c.Collections.BlobSigningTTL) != 336*time.Hour || c.TrashEnabled() ||
		time.Duration(*c.Collections.BlobTrashLifetime) != 14*24*time.Hour || time.Duration(*c.Collections.BlobTrashCheckInterval) != 24*time.Hour ||
		*c.Collections.BlobTrashConcurrency != 0 || c.Collections.BlobReplicateConcurrency != nil ||
		!c.SigningRequired() || c.API.MaxConcurrentRequests != 16 || c.SystemLogs.LogLevel != "debug" {
		t.Fatalf("cluster %s: %+v", id, c)
	}
	tests := []struct {
		given, local string
		want         string // Listen and volumes
		err          string
	}{
		{"", "keep0.zzzzz.example", "keep0.zzzzz.example:25107 [zzzzz-nyw5e-000000000000000 /mnt/keep0 rw 1 [default]] [zzzzz-nyw5e-000000000000001 /mnt/shared ro 2 []] [zzzzz-nyw5e-000000000000002 /mnt/everyone rw 1 []]", ""},
		{"http://keep1.zzzzz.example:25107", "", "0.0.0.0:25108 [zzzzz-nyw5e-000000000000001 /mnt/shared rw 2 []] [zzzzz-nyw5e-000000000000002 /mnt/everyone rw 1 []] [zzzzz-nyw5e-000000000000003 S3 rw 1 []]", ""},
		{"", "", "", "Services.Keepstore.InternalURLs (http://keep0.zzzzz.example:25107/, http://keep1.zzzzz.example:25107/): none is on this host"},
		{"http://elsewhere:1/", "", "", "is not among"},
	}
	for _, tt := range tests {
		ks, err := c.Self(tt.given, func(h string) bool { return h == tt.local })
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Self(%q): %v, want %q", tt.given, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Self(%q): %v", tt.given, err)
			continue
		}
		got := ks.Listen
		for _, v := range ks.Volumes {
			mode := "rw"
			if v.ReadOnly {
				mode = "ro"
			}
			where, _ := v.Params["Root"].(string)
			if where == "" {
				where = v.Driver
			}
			got += fmt.Sprintf(" [%s %s %s %d %v]", v.UUID, where, mode, v.Replication, v.StorageClasses)
		}
		if got != tt.want {
			t.Errorf("Self(%q) = %s\nwant        %s", tt.given, got, tt.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ text, id, want string }{
		{"Clusters: {a: {}, b: {}}", "", "configures 2 clusters (a, b)"},
		{"Clusters: {a: {}}", "b", `does not configure cluster "b"`},
		{"Clusters: [", "", "not a cluster configuration"},
		{"Clusters: {a: {Collections: {BlobSigningTTL: soon}}}", "", "bad duration"},
	}
	for _, tt := range tests {
		if _, _, err := Load([]byte(tt.text), tt.id); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q): %v, want %q", tt.text, err, tt.want)
		}
	}
	for _, tt := range []struct{ text, want string }{
		{"Clusters: {a: {Services: {Keepstore: {InternalURLs: {'http://h:1/': {ListenURL: 'ftp://h:1'}}}}}}", "not an http or https URL"},
		{"Clusters: {a: {}}", "Services.Keepstore.InternalURLs is empty"},
	} {
		_, c, err := Load([]byte(tt.text), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Self("http://h:1", nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Self in %s: %v, want %q", tt.text, err, tt.want)
		}
	}
}

func TestSeveralOnHost(t *testing.T) {
	_, c, err := Load([]byte("Clusters: {a: {Services: {Keepstore: {InternalURLs: {'http://h:1/': {}, 'http://h:2/': {}}}}}}"), "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Self("", func(string) bool { return true })
	if !errors.Is(err, ErrSeveralOnHost) || !strings.Contains(err.Error(), "http://h:1/, http://h:2/") {
		t.Errorf("two URLs on this host: %v", err)
	}
	if _, err := c.Self("", func(string) bool { return false }); !errors.Is(err, ErrNotThisHost) {
		t.Errorf("no URL on this host: %v", err)
	}
	ks, err := c.Self("http://h:2", nil)
	if err != nil || ks.Listen != "h:2" || ks.TLS || len(ks.Volumes) != 0 {
		t.Errorf("Self(http://h:2) = %+v, %v; want h:2, no TLS, no volumes", ks, err)
	}
}

func TestProxyAndTLS(t *testing.T) {
	_, c, err := Load([]byte(config), "")
	if err != nil {
		t.Fatal(err)
	}
	ep, err := c.Proxy("", func(h string) bool { return h == "proxy.zzzzz.example" })
	if err != nil || ep.Listen != "proxy.zzzzz.example:443" || !ep.TLS || ep.InternalURL != "https://proxy.zzzzz.example/" {
		t.Errorf("Proxy = %+v, %v", ep, err)
	}
	if cert, key, err := c.TLSFiles(); err != nil || cert != "/etc/arvados/tls.crt" || key != "/etc/arvados/tls.key" {
		t.Errorf("TLSFiles = %q %q %v", cert, key, err)
	}
	for _, tt := range []struct{ cert, key, want string }{
		{"", "file:///k", "TLS.Certificate is not set"},
		{"file:///c", "", "TLS.Key is not set"},
		{"https://example/c", "file:///k", "want file:///PATH"},
		{"file://relative/c", "file:///k", "want file:///PATH"},
	} {
		c.TLS.Certificate, c.TLS.Key = tt.cert, tt.key
		if _, _, err := c.TLSFiles(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("TLSFiles(%q, %q): %v, want %q", tt.cert, tt.key, err, tt.want)
		}
	}
	_, c, _ = Load([]byte("Clusters: {a: {Collections: {BlobSigning: false}}}"), "")
	if c.SigningRequired() {
		t.Error("BlobSigning: false read as required")
	}
	_, c, _ = Load([]byte("Clusters: {a: {}}"), "")
	if !c.SigningRequired() || !c.TrashEnabled() {
		t.Error("BlobSigning and BlobTrash do not default to true")
	}
	if col := c.Collections; col.BlobTrashLifetime != nil || col.BlobTrashCheckInterval != nil || col.BlobTrashConcurrency != nil {
		t.Errorf("absent trash settings read as set: %+v", col)
	}
	if _, err := c.Proxy("", nil); err == nil || !strings.Contains(err.Error(), "Services.Keepproxy.InternalURLs is empty") {
		t.Errorf("Proxy without keepproxies: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"336h": 336 * time.Hour, "2w": 14 * 24 * time.Hour, "1.5d": 36 * time.Hour, "30": 30 * time.Second, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
}

// TestControllerHost: the proxy's token registry is the host[:port] of
// Services.Controller.ExternalURL, which must be https.
func TestControllerHost(t *testing.T) {
	for ext, want := range map[string]string{
		"":                                "",
		"https://ctrl.zzzzz.example":      "ctrl.zzzzz.example",
		"https://ctrl.zzzzz.example/":     "ctrl.zzzzz.example",
		"https://ctrl.zzzzz.example:443/": "ctrl.zzzzz.example",
		"https://ctrl.zzzzz.example:8443": "ctrl.zzzzz.example:8443",
		"https://[::1]:8443/":             "[::1]:8443",
		"http://ctrl.zzzzz.example/":      "error: is not https",
		"https://ctrl.zzzzz.example/api":  "error: not an https URL",
		"ctrl.zzzzz.example":              "error: not an https URL",
		"https://user@ctrl.zzzzz.example": "error: not an https URL",
	} {
		var c Cluster
		c.Services.Controller.ExternalURL = ext
		got, err := c.ControllerHost()
		if err != nil {
			got = "error: " + err.Error()
		}
		wantErr, isErr := strings.CutPrefix(want, "error: ")
		if isErr && (err == nil || !strings.Contains(got, wantErr)) || !isErr && got != want {
			t.Errorf("ControllerHost of %q = %q, want %q", ext, got, want)
		}
	}
	_, c, err := Load([]byte("Clusters:\n  zzzzz:\n    Services:\n      Controller:\n        ExternalURL: \"https://ctrl.zzzzz.example:8443/\"\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := c.ControllerHost(); h != "ctrl.zzzzz.example:8443" || err != nil {
		t.Errorf("ControllerHost from config.yml = %q, %v", h, err)
	}
}
