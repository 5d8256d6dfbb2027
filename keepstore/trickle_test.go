package keepstore_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// trickler is a client that announces a whole 64 MiB block and sends
// its body a byte at a time.
type trickler struct {
	conn net.Conn
	resp chan *http.Response // the server's answer, if it gives one
}

// startTrickler starts a keeptest.Trickle client and reads the
// server's answer, if it gives one, into the trickler's resp.
func startTrickler(ctx context.Context, t *testing.T, addr string, tick time.Duration) *trickler {
	t.Helper()
	conn := keeptest.Trickle(ctx, t, addr, token, tick)
	tr := &trickler{conn: conn, resp: make(chan *http.Response, 1)}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			tr.resp <- resp
		}
		close(tr.resp)
	}()
	return tr
}

// waitWrites waits until the server holds n write slots.
func waitWrites(t *testing.T, ts *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for ts.srv.Status(context.Background()).WritesInFlight != n {
		if time.Now().After(deadline) {
			t.Fatalf("write slots held: %d, want %d", ts.srv.Status(context.Background()).WritesInFlight, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTricklersDoNotLockOut: 64 clients announcing 64 MiB PUTs and
// sending a byte every 100 ms take every write slot, yet reads and
// index listings go on (they have slots of their own), and a normal PUT
// succeeds, once a trickler is far enough behind, by taking the slot of
// the trickler furthest behind the minimum rate, which is cut off with
// 408. (The server once gave every request 503 for minutes.)
func TestTricklersDoNotLockOut(t *testing.T) {
	const tricklers = keepstore.DefaultMaxConcurrentWrites
	// A long grace, so that tricklers are cut only to make room.
	ts := start(t, keepstore.Config{SystemToken: "sys", UploadGrace: time.Hour})
	keepstore.SetEvictAfter(ts.srv, 50*time.Millisecond)
	stored := []byte("stored before the tricklers came")
	ts.put(t, stored)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var trs []*trickler
	for range tricklers {
		trs = append(trs, startTrickler(ctx, t, ts.Listener.Addr().String(), 100*time.Millisecond))
	}
	waitWrites(t, ts, tricklers)

	if code, body, _ := ts.do(t, "GET", "/"+locator.New(stored).String(), "", nil); code != 200 || body != string(stored) {
		t.Errorf("GET among %d tricklers: %d %q", tricklers, code, body)
	}
	if code, body, _ := ts.do(t, "GET", "/index", "sys", nil); code != 200 || !strings.Contains(body, hashOf(stored)) {
		t.Errorf("index among %d tricklers: %d %q", tricklers, code, body)
	}
	// A trickler may be evicted only once it is evictAfter behind: until
	// then the server is rightly busy (503), and a client tries again.
	// How soon that is depends on when the tricklers' reads began, so
	// the PUT is retried rather than timed.
	data := []byte("an honest block among tricklers")
	deadline := time.Now().Add(time.Minute)
	for {
		code, body, _ := ts.do(t, "PUT", "/"+hashOf(data), token, data)
		if code == 200 {
			break
		}
		if code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("normal PUT among %d tricklers: %d %q", tricklers, code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Exactly one trickler made room, and was told why.
	var cut *http.Response
	for cut == nil {
		for _, tr := range trs {
			select {
			case r := <-tr.resp:
				if r != nil {
					cut = r
				}
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no trickler was told it was cut off")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if cut.StatusCode != http.StatusRequestTimeout || !cut.Close {
		t.Errorf("evicted trickler got %d (close %v), want 408 and the connection closed", cut.StatusCode, cut.Close)
	}
	if code, body, _ := ts.do(t, "GET", "/metrics", mgmtToken, nil); code != 200 || !strings.Contains(body, `keepstore_uploads_cut_total{reason="evicted"} 1`) {
		t.Errorf("metrics do not count one eviction:\n%s", grepLines(body, "uploads_cut"))
	}
	cancel()
	for _, tr := range trs {
		tr.conn.Close()
	}
	waitWrites(t, ts, 0)
	for _, f := range ts.files(t) {
		if strings.Contains(f, hashOf([]byte("never sent"))) {
			t.Errorf("a trickled body was stored: %s", f)
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// TestSlowUploadCut: an upload that falls behind the minimum rate gets
// 408 with its connection closed once its allowance runs out, even if
// it sends nothing more, and nothing is stored; one that keeps to the
// rate succeeds.
func TestSlowUploadCut(t *testing.T) {
	tests := []struct {
		name string
		tick time.Duration // 0: one byte and then silence
	}{
		{"trickling", 50 * time.Millisecond},
		{"stalled", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t, keepstore.Config{MinUploadRate: 64 << 10, UploadGrace: 200 * time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tr := startTrickler(ctx, t, ts.Listener.Addr().String(), tt.tick)
			var resp *http.Response
			select {
			case resp = <-tr.resp:
			case <-time.After(time.Minute):
				t.Fatal("slow upload never cut off")
			}
			if resp == nil || resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
				t.Fatalf("slow upload: %+v, want 408 and the connection closed", resp)
			}
			waitWrites(t, ts, 0)
			if files := ts.files(t); len(files) != 0 {
				t.Errorf("files left by a cut upload: %v", files)
			}
			if _, body, _ := ts.do(t, "GET", "/metrics", mgmtToken, nil); !strings.Contains(body, `keepstore_uploads_cut_total{reason="slow"} 1`) {
				t.Errorf("metrics do not count one slow upload:\n%s", grepLines(body, "uploads_cut"))
			}
		})
	}
	// An upload at a modest, honest rate is not cut: 256 KiB in 16 KiB
	// pieces at 4 ms apart (4 MiB/s), on a 64 KiB/s minimum.
	ts := start(t, keepstore.Config{MinUploadRate: 64 << 10, UploadGrace: 200 * time.Millisecond})
	data := bytes.Repeat([]byte("honest"), 256<<10/6)
	pr, pw := io.Pipe()
	go func() {
		for b := data; len(b) > 0; {
			n := min(len(b), 16<<10)
			pw.Write(b[:n])
			b = b[n:]
			time.Sleep(4 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", ts.URL+"/"+hashOf(data), pr)
	req.ContentLength = int64(len(data))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("honest paced upload: %d, want 200", resp.StatusCode)
	}
}

// TestTricklersDoNotFillVolume: uploads that declare 64 MiB and send a
// byte claim a byte of room, not 64 MiB, so 15 of them on a 1 GiB
// volume holding 8 MiB do not make it answer 507 to a real 64 MiB
// upload. (With 960 MiB claimed by them they once did, and clients never
// retry 507.)
func TestTricklersDoNotFillVolume(t *testing.T) {
	vols := dirVolumes(t, 1)
	vols[0].Capacity = 1 << 30
	ts := start(t, keepstore.Config{Volumes: vols, MinUploadRate: -1})
	held := bytes.Repeat([]byte("8 MiB held"), 8<<20/10)
	ts.put(t, held)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const tricklers = 15
	for range tricklers {
		startTrickler(ctx, t, ts.Listener.Addr().String(), 0)
	}
	waitWrites(t, ts, tricklers)
	data := bytes.Repeat([]byte("a whole block"), locator.MaxBlockSize/13)
	if code, body, _ := ts.do(t, "PUT", "/"+hashOf(data), token, data); code != 200 {
		t.Fatalf("64 MiB upload beside %d tricklers on a 1 GiB volume holding 8 MiB: %d %q", tricklers, code, body)
	}
	u := ts.srv.Status(context.Background()).Volumes[0]
	if want := int64(len(held) + len(data)); u.ReservedBytes > tricklers || u.UsedBytes != want {
		t.Errorf("usage beside %d one-byte tricklers: %d reserved, %d used; want at most %d reserved, %d used",
			tricklers, u.ReservedBytes, u.UsedBytes, tricklers, want)
	}
}
