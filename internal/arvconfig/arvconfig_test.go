package arvconfig

import (
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
    Collections:
      BlobSigningKey: signingkey
      BlobSigningTTL: 336h
      BlobTrash: false
      BlobTrashLifetime: 2w
      BlobTrashCheckInterval: 86400
    Services:
      Keepstore:
        InternalURLs:
          "http://keep0.zzzzz.example:25107/": {}
          "http://keep1.zzzzz.example:25107/":
            ListenURL: "http://0.0.0.0:25108/"
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
`

func TestLoadAndSelf(t *testing.T) {
	id, c, err := Load([]byte(config), "")
	if err != nil {
		t.Fatal(err)
	}
	if id != "zzzzz" || c.SystemRootToken != "systemroottoken" || c.ManagementToken != "mgmt" || c.Collections.BlobSigningKey != "signingkey" ||
		time.Duration(c.Collections.BlobSigningTTL) != 336*time.Hour || c.TrashEnabled() ||
		time.Duration(c.Collections.BlobTrashLifetime) != 14*24*time.Hour || time.Duration(c.Collections.BlobTrashCheckInterval) != 24*time.Hour {
		t.Fatalf("cluster %s: %+v", id, c)
	}
	tests := []struct {
		given, local string
		want         string // Listen and volumes
		err          string
	}{
		{"", "keep0.zzzzz.example", "keep0.zzzzz.example:25107 [zzzzz-nyw5e-000000000000000 /mnt/keep0 rw 1 [default]] [zzzzz-nyw5e-000000000000001 /mnt/shared ro 2 []] [zzzzz-nyw5e-000000000000002 /mnt/everyone rw 1 []]", ""},
		{"http://keep1.zzzzz.example:25107", "", "0.0.0.0:25108 [zzzzz-nyw5e-000000000000001 /mnt/shared rw 2 []] [zzzzz-nyw5e-000000000000002 /mnt/everyone rw 1 []]", ""},
		{"", "", "", "no keepstore internal URL is on this host"},
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
			got += fmt.Sprintf(" [%s %s %s %d %v]", v.UUID, v.Root, mode, v.Replication, v.StorageClasses)
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
	_, c, _ := Load([]byte("Clusters: {a: {Services: {Keepstore: {InternalURLs: {'http://h:1/': {}}}}, Volumes: {v: {Driver: S3}}}}"), "")
	if _, err := c.Self("http://h:1", nil); err == nil || !strings.Contains(err.Error(), `driver "S3" is not supported`) {
		t.Errorf("S3 volume: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"336h": 336 * time.Hour, "2w": 14 * 24 * time.Hour, "1.5d": 36 * time.Hour, "30": 30 * time.Second, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
}
