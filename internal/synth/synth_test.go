package synth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/balance"
	"github.com/keepproject/keep/internal/synth"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/manifest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "synth-system-token"

func newCluster(t *testing.T, cfg synth.Config) *synth.Cluster {
	t.Helper()
	c, err := synth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The holders follow keepclient.ProbeOrder, and the counts the kinds.
func TestPlacementAndCounts(t *testing.T) {
	for _, n := range []int{0, 1, 7, 100, 1234} {
		c := newCluster(t, synth.Issue20(n))
		var svcs []keepclient.Service
		for s := range 4 {
			svcs = append(svcs, keepclient.Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015d", s), Host: "127.0.0.1", Port: 1, Type: keepclient.TypeDisk})
		}
		var got synth.Counts
		got.Blocks = n
		for i := range n {
			order := keepclient.ProbeOrder(c.Hash(i), svcs)
			pos := func(rank int) int {
				var s int
				fmt.Sscanf(order[rank].UUID, "zzzzz-bi6l4-%d", &s)
				return s
			}
			want := map[synth.Kind][]int{synth.Placed: {0, 1}, synth.Garbage: {0, 1}, synth.Misplaced: {0, 2}, synth.Short: {0}}[c.Kind(i)]
			holders := 0
			for s := range 4 {
				if c.Holds(i, s) {
					holders++
				}
			}
			if holders != len(want) {
				t.Fatalf("n=%d block %d (%v): %d holders, want %d", n, i, c.Kind(i), holders, len(want))
			}
			for _, rank := range want {
				if !c.Holds(i, pos(rank)) {
					t.Fatalf("n=%d block %d (%v): not on the server at probe rank %d", n, i, c.Kind(i), rank)
				}
			}
			got.Copies += holders
			switch c.Kind(i) {
			case synth.Placed:
				got.Placed++
			case synth.Misplaced:
				got.Misplaced++
				got.Pulls++
			case synth.Short:
				got.Short++
				got.Pulls++
			case synth.Garbage:
				got.Garbage++
				got.Trash += 2
			}
		}
		got.Referenced = n - got.Garbage
		if c.Counts() != got {
			t.Errorf("n=%d: Counts() = %+v, counted %+v", n, c.Counts(), got)
		}
	}
}

// The same seed makes the same cluster; another seed another.
func TestDeterministic(t *testing.T) {
	a := newCluster(t, synth.Issue20(10))
	b := newCluster(t, synth.Issue20(10))
	cfg := synth.Issue20(10)
	cfg.Seed = 1
	other := newCluster(t, cfg)
	if a.Hash(3) != b.Hash(3) || a.Hash(3) == other.Hash(3) || a.Hash(3) == a.Hash(4) || len(a.Hash(3)) != 32 {
		t.Errorf("hashes %s %s %s %s", a.Hash(3), b.Hash(3), other.Hash(3), a.Hash(4))
	}
}

func TestNewRefuses(t *testing.T) {
	for _, cfg := range []synth.Config{
		{Blocks: -1},
		{Blocks: 1, Servers: 2},
		{Blocks: 1, Servers: 9},
		{Blocks: 1, Garbage: 60, Short: 50},
		{Blocks: 1, Misplaced: -1},
		{Blocks: 1, PerManifest: -1},
	} {
		if _, err := synth.New(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// balance.Fetch reads the servers, and balance.Compute classes every
// block as the generator made it, with the manifests as the live set.
func TestBalanceReadsTheCluster(t *testing.T) {
	c := newCluster(t, synth.Config{Blocks: 5000, Garbage: 2, Short: 1, Misplaced: 5, PerManifest: 700})
	want := c.Counts()
	srv := c.Serve(token)
	defer srv.Close()
	client := &balance.Client{Token: token}
	inv := balance.NewInventory()
	if err := client.Fetch(context.Background(), inv, srv.Services); err != nil {
		t.Fatal(err)
	}
	if inv.Stored() != want.Blocks || inv.CopyCount() != want.Copies {
		t.Fatalf("fetched %d blocks, %d copies; want %d, %d", inv.Stored(), inv.CopyCount(), want.Blocks, want.Copies)
	}

	dir := t.TempDir()
	files, err := c.WriteManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	if wantFiles := (want.Referenced + 699) / 700; files != wantFiles {
		t.Errorf("%d manifest files, want %d", files, wantFiles)
	}
	live := map[string]bool{}
	for f := range files {
		text, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("m%06d", f)))
		if err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Parse(string(text))
		if err != nil {
			t.Fatalf("manifest %d: %v", f, err)
		}
		if n := len(m.Blocks()); n != 700 && f != files-1 {
			t.Errorf("manifest %d: %d blocks", f, n)
		}
		for _, l := range m.Blocks() {
			live[l.Hash] = true
			if err := inv.Want(l.Hash, l.Size, 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(live) != want.Referenced {
		t.Fatalf("%d blocks referenced, want %d", len(live), want.Referenced)
	}

	p, err := balance.Compute(inv, balance.Options{Now: time.Now(), SigningTTL: 336 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got := [...]int{p.Summary[balance.OK].Blocks, p.Summary[balance.Misplaced].Blocks, p.Summary[balance.Under].Blocks, p.Summary[balance.Unreferenced].Blocks, p.Summary[balance.Over].Blocks, p.Summary[balance.Lost].Blocks}
	if exp := [...]int{want.Placed, want.Misplaced, want.Short, want.Garbage, 0, 0}; got != exp {
		t.Errorf("ok, misplaced, under, unreferenced, over, lost = %v, want %v", got, exp)
	}
	pulls, trash := 0, 0
	for i := range inv.Servers {
		pulls += p.PullCount(i)
		trash += p.TrashCount(i)
	}
	if pulls != want.Pulls || trash != want.Trash {
		t.Errorf("%d pulls, %d trash; want %d, %d", pulls, trash, want.Pulls, want.Trash)
	}
}

// The management API's reads: the token, /mounts, an index by prefix
// through both routes, and 404 for the rest.
func TestServe(t *testing.T) {
	c := newCluster(t, synth.Issue20(300))
	srv := c.Serve(token)
	defer srv.Close()
	u := srv.Services[0].URL()
	get := func(path, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/mounts", ""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", code)
	}
	if code, _ := get("/mounts", "other"); code != http.StatusUnauthorized {
		t.Errorf("another token: %d", code)
	}
	if code, body := get("/mounts", token); code != http.StatusOK || !strings.Contains(body, `"uuid":"`+synth.MountUUID(0)+`"`) {
		t.Errorf("/mounts: %d %s", code, body)
	}
	_, all := get("/index", token)
	if !strings.HasSuffix(all, "\n\n") {
		t.Fatalf("index without a final empty line: %q", all[max(len(all)-100, 0):])
	}
	var first string
	for i := range 300 {
		if c.Holds(i, 0) {
			first = c.Hash(i)
			break
		}
	}
	prefix := first[:2]
	wantLines := 0
	for _, line := range strings.Split(strings.TrimSuffix(all, "\n\n"), "\n") {
		if strings.HasPrefix(line, prefix) {
			wantLines++
		}
	}
	for _, path := range []string{"/mounts/" + synth.MountUUID(0) + "/blocks?prefix=" + prefix, "/index/" + prefix, "/index?prefix=" + prefix} {
		code, body := get(path, token)
		lines := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n")
		if code != http.StatusOK || len(lines) != wantLines || !strings.HasPrefix(body, first) {
			t.Errorf("%s: %d, %d lines (want %d): %.100q", path, code, len(lines), wantLines, body)
		}
	}
	for _, path := range []string{"/mounts/" + synth.MountUUID(1) + "/blocks", "/pull", "/" + first} {
		if code, _ := get(path, token); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
	if code, _ := get("/index/XYZ", token); code != http.StatusBadRequest {
		t.Errorf("bad prefix: %d", code)
	}
}
