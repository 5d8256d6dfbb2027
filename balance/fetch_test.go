package balance

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepstore"
)

func TestParseIndex(t *testing.T) {
	h := hashes[0]
	tests := []struct {
		name  string
		in    string
		lines int
		err   string // "" for none
	}{
		{"empty, complete", "\n", 0, ""},
		{"two blocks", h + "+3 1700000000000000000\n" + hashes[1] + "+0 1\n\n", 2, ""},
		{"cut short", h + "+3 1700000000000000000\n", 1, "incomplete"},
		{"nothing", "", 0, "incomplete"},
		{"no size", h + " 17\n\n", 0, "not \"hash+size mtime\""},
		{"bad hash", "xyz+3 17\n\n", 0, "not \"hash+size mtime\""},
		{"bad mtime", h + "+3 soon\n\n", 0, "bad mtime"},
		{"line too long", h + "+3 " + strings.Repeat("1", 2000) + "\n\n", 0, "too long"},
		{"data after the end", h + "+3 1\n\n" + h + "+3 1\n", 1, "after the final empty line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := parseIndex(strings.NewReader(tt.in), func(string, int64, int64) { n++ })
			if n != tt.lines || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%d lines, error %v; want %d, %q", n, err, tt.lines, tt.err)
			}
		})
	}
}

func service(t *testing.T, srv *httptest.Server, i int) keepclient.Service {
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", i), Host: host, Port: p, Type: keepclient.TypeDisk}
}

// Fetch against a real block server, read through its index.
func TestFetchFromServer(t *testing.T) {
	ks, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: t.TempDir()}}, SystemToken: "sys", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ks)
	t.Cleanup(func() {
		srv.Close()
		ks.Close()
	})
	// A server whose index is cut short.
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/index" {
			fmt.Fprintf(w, "%s+3 1\n", hashes[2])
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(cut.Close)
	svcs := []keepclient.Service{service(t, srv, 0), service(t, cut, 1)}
	kc, err := keepclient.New(keepclient.Options{Services: svcs[:1], Token: "user", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	var stored []string
	for _, s := range []string{"one", "two"} {
		if _, err := kc.Put(context.Background(), []byte(s), keepclient.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum([]byte(s))
		stored = append(stored, hex.EncodeToString(sum[:]))
	}
	c := &Client{Token: "sys"}
	inv, err := c.Fetch(context.Background(), svcs)
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("Fetch error %v, want the cut index reported", err)
	}
	if !inv.Servers[0].Complete || inv.Servers[1].Complete {
		t.Errorf("complete: %v, %v", inv.Servers[0].Complete, inv.Servers[1].Complete)
	}
	for _, h := range stored {
		if cs := inv.Copies[h]; len(cs) != 1 || cs[0].Server != 0 || cs[0].Size != 3 || cs[0].Mtime == 0 {
			t.Errorf("copies of %s: %+v", h, cs)
		}
	}
	if cs := inv.Copies[hashes[2]]; len(cs) != 1 || cs[0].Server != 1 {
		t.Errorf("what was read of the cut index is lost: %+v", cs)
	}
	// The wrong token is an error, not an empty server.
	bad := &Client{Token: "nope"}
	if inv, err := bad.Fetch(context.Background(), svcs[:1]); err == nil || inv.Servers[0].Complete {
		t.Errorf("wrong token: %v", err)
	}
}
