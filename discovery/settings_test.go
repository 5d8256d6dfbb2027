package discovery

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keepproject/keep/keepclient"
)

func TestParseKeepServices(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []keepclient.Service // UUID and Type are checked separately
		wantErr []string
	}{
		{in: "http://keep0:25107", want: []keepclient.Service{{Host: "keep0", Port: 25107}}},
		{in: "http://keep0:25107/", want: []keepclient.Service{{Host: "keep0", Port: 25107}}},
		{in: "http://keep0:25107//", want: []keepclient.Service{{Host: "keep0", Port: 25107}}},
		{in: "https://keep.example", want: []keepclient.Service{{Host: "keep.example", Port: 443, TLS: true}}},
		{in: "http://keep.example/", want: []keepclient.Service{{Host: "keep.example", Port: 80}}},
		{in: "HTTPS://keep.example:8443", want: []keepclient.Service{{Host: "keep.example", Port: 8443, TLS: true}}},
		{in: "http://[::1]:9000", want: []keepclient.Service{{Host: "::1", Port: 9000}}},
		{
			in: "  http://a:1 \thttps://b/\n http://c:3 ",
			want: []keepclient.Service{
				{Host: "a", Port: 1},
				{Host: "b", Port: 443, TLS: true},
				{Host: "c", Port: 3},
			},
		},
		{in: "ftp://keep0", wantErr: []string{`"ftp://keep0": not an http or https URL`}},
		{in: "keep0:25107", wantErr: []string{`"keep0:25107": not an http or https URL`}},
		{in: "/keep0", wantErr: []string{`"/keep0": not an http or https URL`}},
		{in: "http://", wantErr: []string{`"http://": no host`}},
		{in: "http:keep0", wantErr: []string{`"http:keep0": no host`}},
		{in: "http://:80", wantErr: []string{`"http://:80": no host`}},
		{in: "http://keep0/keep", wantErr: []string{`"http://keep0/keep": has a path`}},
		{in: "http://keep0?x=1", wantErr: []string{`"http://keep0?x=1": has a path, query or fragment`}},
		{in: "http://u:p@keep0", wantErr: []string{`"http://u:p@keep0": user info`}},
		{in: "http://keep0:99999", wantErr: []string{`"http://keep0:99999": bad port "99999"`}},
		{in: "http://keep0:0", wantErr: []string{`bad port "0"`}},
		{in: "http://keep0:x", wantErr: []string{`"http://keep0:x": invalid port`}},
		{in: "http://a:1 http://a:1/", wantErr: []string{`"http://a:1/": listed twice`}},
		{
			in:      "http://good:1 ftp://bad1 http://good2 gopher://bad2",
			wantErr: []string{`"ftp://bad1"`, `"gopher://bad2"`, "want space-separated http:// or https:// root URLs"},
		},
		{in: "   ", wantErr: []string{"set but lists no URLs"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseKeepServices(tt.in)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i, s := range got {
				if want := "00000-bi6l4-00000000000000" + string(rune('0'+i)); s.UUID != want {
					t.Errorf("service %d: uuid %q, want %q", i, s.UUID, want)
				}
				if s.Type != "proxy" || s.ReadOnly || s.IsDisk() {
					t.Errorf("service %d: type %q read-only %v, want a writable proxy", i, s.Type, s.ReadOnly)
				}
				s.UUID, s.Type = "", ""
				if s != tt.want[i] {
					t.Errorf("service %d: %+v, want %+v", i, s, tt.want[i])
				}
			}
		})
	}
}

func TestSettingsConf(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t, fixed(svc("from-api")))
	conf := "# Arvados client settings\n\n" +
		keyAPIHost + "=" + api.host + "\n" +
		"  " + keyToken + " = " + testToken + "  \r\n" +
		"not a setting\n" +
		keyInsecure + "=yes\n"

	tests := []struct {
		name         string
		env          env
		wantSrc      string
		wantToken    string
		wantInsecure bool
		wantErr      []string
	}{
		{
			name:         "all from settings.conf",
			wantSrc:      "API server " + api.host + " (ARVADOS_API_HOST in ",
			wantToken:    testToken,
			wantInsecure: true,
		},
		{
			name:         "environment wins per key",
			env:          env{keyToken: "env-token", keyInsecure: "false"},
			wantSrc:      "API server " + api.host + " (ARVADOS_API_HOST in ",
			wantToken:    "env-token",
			wantInsecure: false,
			// The environment's token and TLS settings are used against
			// the settings.conf host: the certificate is now checked.
			wantErr: []string{"certificate"},
		},
		{
			name:         "environment host wins",
			env:          env{keyAPIHost: "127.0.0.1:1"},
			wantSrc:      "API server 127.0.0.1:1",
			wantToken:    testToken,
			wantInsecure: true,
			wantErr:      []string{"keep services from API server 127.0.0.1:1: ", "connection refused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			home := t.TempDir()
			writeConf(t, home, conf)
			r := New(Config{Getenv: tt.env.getenv, HomeDir: home})
			if r.Source() != tt.wantSrc && !strings.HasPrefix(r.Source(), tt.wantSrc) {
				t.Errorf("Source() = %q, want %q", r.Source(), tt.wantSrc)
			}
			if r.Token() != tt.wantToken {
				t.Errorf("Token() = %q, want %q", r.Token(), tt.wantToken)
			}
			if r.Insecure() != tt.wantInsecure {
				t.Errorf("Insecure() = %v, want %v", r.Insecure(), tt.wantInsecure)
			}
			svcs, err := r.Services(context.Background())
			if tt.wantErr != nil {
				checkErr(t, err, tt.wantErr...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hosts(svcs) != "from-api" {
				t.Errorf("hosts %s, want from-api", hosts(svcs))
			}
		})
	}
}

func TestUnreadableSettingsConf(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	// A directory where the file should be: unreadable even as root.
	confPath := filepath.Join(home, ".config", "arvados", "settings.conf")
	if err := os.MkdirAll(confPath, 0o755); err != nil {
		t.Fatal(err)
	}

	// It matters when settings.conf could hold the chosen source...
	r := New(Config{Getenv: env{}.getenv, HomeDir: home})
	_, err := r.Services(context.Background())
	checkErr(t, err, "keep services from "+confPath+": is a directory (fix or remove it)")

	// ...but not when a higher-precedence setting is in the environment.
	r = New(Config{Getenv: env{keyKeepServices: "http://a:1"}.getenv, HomeDir: home})
	if got := hosts(mustServices(t, r)); got != "a" {
		t.Errorf("hosts %s, want a", got)
	}
}

func TestFirstLine(t *testing.T) {
	t.Parallel()
	a := apiSource{token: "tok"}
	tests := []struct{ in, want string }{
		{"", ""},
		{"  Not logged in  \nmore", "Not logged in"},
		{"bad\x00bytes\x1b[31m \xff tok", "badbytes[31m  ***"},
		{strings.Repeat("é", 300), strings.Repeat("é", 200) + "..."},
	}
	for _, tt := range tests {
		if got := a.firstLine(strings.NewReader(tt.in)); got != tt.want {
			t.Errorf("firstLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseSettings: a settings.conf of any content parses without
// panicking into trimmed keys and values without newlines, and writing
// them back out as KEY=value lines gives the same settings.
func FuzzParseSettings(f *testing.F) {
	f.Add("ARVADOS_API_HOST=zzzzz.example.com\nARVADOS_API_TOKEN=v2/x/y\n# comment\n")
	f.Add("  KEY = value = more \r\n\nnoequals\n=empty key\n")
	f.Fuzz(func(t *testing.T, text string) {
		m := parseSettings(text)
		var b strings.Builder
		for k, v := range m {
			if k != strings.TrimSpace(k) || v != strings.TrimSpace(v) || strings.Contains(k+v, "\n") || strings.Contains(k, "=") {
				t.Fatalf("setting %q=%q from %q", k, v, text)
			}
			if k == "" || k[0] == '#' {
				continue // cannot be written back
			}
			b.WriteString(k + "=" + v + "\n")
		}
		again := parseSettings(b.String())
		for k, v := range again {
			if m[k] != v {
				t.Fatalf("round trip: %q=%q became %q", k, m[k], v)
			}
		}
	})
}

// FuzzParseKeepServices: every URL ARVADOS_KEEP_SERVICES accepts names a
// host and port and nothing else.
func FuzzParseKeepServices(f *testing.F) {
	f.Add("http://keep0:25107 https://keep1.example")
	f.Add("http://user@host https://h/path?q")
	f.Fuzz(func(t *testing.T, v string) {
		svcs, err := parseKeepServices(v)
		if err != nil {
			return
		}
		for _, s := range svcs {
			u, err := url.Parse(s.URL())
			if err != nil || u.Hostname() != s.Host || u.Port() != strconv.Itoa(s.Port) || u.User != nil || u.Path != "" || u.RawQuery != "" {
				t.Fatalf("%q gave service %+v with URL %q", v, s, s.URL())
			}
		}
	})
}

func TestKeepToken(t *testing.T) {
	tests := []struct {
		env  env
		conf string // settings.conf, "" for none
		want string
	}{
		{env{}, "", ""},
		{env{keyKeepToken: "k"}, "", "k"},
		{env{keyToken: "a", keyKeepToken: "k"}, "", "a"},
		{env{keyKeepToken: "k"}, "ARVADOS_API_TOKEN=c\n", "c"},
	}
	for _, tt := range tests {
		home := t.TempDir()
		if tt.conf != "" {
			os.MkdirAll(filepath.Join(home, ".config", "arvados"), 0o700)
			os.WriteFile(filepath.Join(home, ".config", "arvados", "settings.conf"), []byte(tt.conf), 0o600)
		}
		if got := New(Config{Getenv: tt.env.getenv, HomeDir: home}).KeepToken(); got != tt.want {
			t.Errorf("env %v, settings.conf %q: KeepToken() = %q, want %q", tt.env, tt.conf, got, tt.want)
		}
	}
}
