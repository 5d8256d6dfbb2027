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
	"sync/atomic"
	"testing"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keepstore"
	_ "github.com/keepproject/keep/keepstore/dirvolume"
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
			err := parseIndex(strings.NewReader(tt.in), func(hash, int64, int64) error { n++; return nil })
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
	inv, err := fetch(c, svcs)
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("Fetch error %v, want the cut index reported", err)
	}
	if !inv.Servers[0].Complete || inv.Servers[1].Complete {
		t.Errorf("complete: %v, %v", inv.Servers[0].Complete, inv.Servers[1].Complete)
	}
	for _, h := range stored {
		if cs := inv.Copies(h); len(cs) != 1 || cs[0].Server != 0 || cs[0].Size != 3 || cs[0].Mtime == 0 {
			t.Errorf("copies of %s: %+v", h, cs)
		}
	}
	if cs := inv.Copies(hashes[2]); len(cs) != 1 || cs[0].Server != 1 {
		t.Errorf("what was read of the cut index is lost: %+v", cs)
	}
	// The wrong token is an error, not an empty server.
	bad := &Client{Token: "nope"}
	if inv, err := fetch(bad, svcs[:1]); err == nil || inv.Servers[0].Complete {
		t.Errorf("wrong token: %v", err)
	}
}

// A volume several servers list is read once, from the first; if that
// read fails, from the next; if every one fails, all those servers are
// incomplete.
func TestFetchSharedVolumeOnce(t *testing.T) {
	line := hashes[0] + "+3 1700000000000000000\n\n"
	type fake struct {
		fail  bool
		reads atomic.Int32
	}
	start := func(f *fake) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/mounts":
				fmt.Fprint(w, `[{"uuid":"zzzzz-nyw5e-shared000000000","device_id":"bucket","allow_write":true,"allow_trash":true,"replication":1}]`)
			case "/mounts/zzzzz-nyw5e-shared000000000/blocks":
				f.reads.Add(1)
				if f.fail {
					http.Error(w, "disk on fire", http.StatusInternalServerError)
					return
				}
				fmt.Fprint(w, line)
			default:
				http.NotFound(w, r)
			}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	tests := []struct {
		name          string
		fail          [2]bool
		reads         [2]int32
		copies        int
		complete, err bool
	}{
		{"read once, from the first", [2]bool{false, false}, [2]int32{1, 0}, 1, true, false},
		{"the first fails: from the second", [2]bool{true, false}, [2]int32{1, 1}, 1, true, false},
		{"both fail: both incomplete", [2]bool{true, true}, [2]int32{1, 1}, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakes := [2]*fake{{fail: tt.fail[0]}, {fail: tt.fail[1]}}
			svcs := []keepclient.Service{service(t, start(fakes[0]), 0), service(t, start(fakes[1]), 1)}
			inv, err := fetch(&Client{Token: "sys"}, svcs)
			if (err != nil) != tt.err || err != nil && !strings.Contains(err.Error(), "disk on fire") {
				t.Errorf("error %v", err)
			}
			if warned := len(inv.Warnings) > 0; warned != (tt.fail[0] && !tt.fail[1]) || warned && !strings.Contains(inv.Warnings[0].Error(), "disk on fire") {
				t.Errorf("warnings %v", inv.Warnings)
			}
			if got := [2]int32{fakes[0].reads.Load(), fakes[1].reads.Load()}; got != tt.reads {
				t.Errorf("index reads %v, want %v", got, tt.reads)
			}
			if got := len(inv.Copies(hashes[0])); got != tt.copies {
				t.Errorf("%d copies listed, want %d", got, tt.copies)
			}
			for i, s := range inv.Servers {
				if s.Complete != tt.complete {
					t.Errorf("server %d complete: %v", i, s.Complete)
				}
			}
		})
	}
}

// A server that says some of its volumes are missing is incomplete: their
// blocks are unknown, so no trash is sent; what it does list still counts.
func TestFetchMissingVolumes(t *testing.T) {
	for _, header := range []string{"", "0", "1", "lots", "-3"} {
		t.Run(header, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/mounts":
					if header != "" {
						w.Header().Set(protocol.HeaderVolumesMissing, header)
					}
					fmt.Fprint(w, `[{"uuid":"zzzzz-nyw5e-present00000000","allow_write":true,"allow_trash":true,"replication":1}]`)
				case "/mounts/zzzzz-nyw5e-present00000000/blocks":
					fmt.Fprintf(w, "%s+3 1700000000000000000\n\n", hashes[0])
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			inv, err := fetch(&Client{Token: "sys"}, []keepclient.Service{service(t, srv, 0)})
			complete := header == "" || header == "0"
			if inv.Servers[0].Complete != complete || (err == nil) != complete || err != nil && !strings.Contains(err.Error(), "missing") {
				t.Errorf("complete %v, error %v", inv.Servers[0].Complete, err)
			}
			if len(inv.Copies(hashes[0])) != 1 {
				t.Errorf("the present volume's copies: %+v", inv.Copies(hashes[0]))
			}
		})
	}
}

// fetch reads the servers into a new inventory.
func fetch(c *Client, svcs []keepclient.Service) (*Inventory, error) {
	inv := NewInventory()
	err := c.Fetch(context.Background(), inv, svcs)
	return inv, err
}
