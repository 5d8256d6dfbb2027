package keepclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingConn is a net.Conn that keeps what is written to it and the
// size of each write.
type recordingConn struct {
	net.Conn // nil: only Write is used
	buf      bytes.Buffer
	sizes    []int
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.sizes = append(c.sizes, len(p))
	return c.buf.Write(p)
}

func newTestUpload(data []byte) (*upload, *watchdog, func()) {
	u := &upload{src: &blockSource{data: data}, cancel: func(error) {}}
	wd := newWatchdog(time.Hour, func(error) {})
	return u, wd, wd.stop
}

// TestBodyConnWritesFromBlock: a body the transport hands to the
// connection's ReadFrom is written straight from the block in
// sendChunk writes, up to the transport's limit, with the upload's
// bytes-sent count kept; other readers are copied as they are.
func TestBodyConnWritesFromBlock(t *testing.T) {
	data := make([]byte, 3*sendChunk+1234)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, limit := range []int64{int64(len(data)), sendChunk + 5, 0} {
		u, wd, stop := newTestUpload(data)
		var open sync.WaitGroup
		body := newBlockBody(u, wd, &open)
		rc := &recordingConn{}
		lr := &io.LimitedReader{R: body, N: limit}
		n, err := (&bodyConn{rc}).ReadFrom(lr)
		body.Close()
		open.Wait()
		stop()
		if err != nil || n != limit || lr.N != 0 || !bytes.Equal(rc.buf.Bytes(), data[:limit]) {
			t.Errorf("limit %d: ReadFrom = %d, %v; left %d; wrote %d bytes, equal %v", limit, n, err, lr.N, rc.buf.Len(), bytes.Equal(rc.buf.Bytes(), data[:limit]))
		}
		for i, s := range rc.sizes {
			if s > sendChunk || i < len(rc.sizes)-1 && s != sendChunk {
				t.Errorf("limit %d: write sizes %v, want %d each but the last", limit, rc.sizes, sendChunk)
				break
			}
		}
		if got := u.sent.Load(); got != limit {
			t.Errorf("limit %d: sent = %d", limit, got)
		}
		if complete := u.body.Load() == bodyComplete; complete != (limit == int64(len(data))) {
			t.Errorf("limit %d: body complete = %v", limit, complete)
		}
	}

	rc := &recordingConn{}
	if n, err := (&bodyConn{rc}).ReadFrom(bytes.NewReader([]byte("other"))); n != 5 || err != nil || rc.buf.String() != "other" {
		t.Errorf("ReadFrom(other reader) = %d, %v, wrote %q", n, err, rc.buf.String())
	}
}

// TestBodyConnReplaced: once the upload is aborted for lag, nothing more
// is written, and the block's last chunk never is.
func TestBodyConnReplaced(t *testing.T) {
	data := make([]byte, 2*sendChunk+10)
	u, wd, stop := newTestUpload(data)
	defer stop()
	var open sync.WaitGroup
	body := newBlockBody(u, wd, &open)
	defer body.Close()
	rc := &recordingConn{}
	// Write all but the last chunk, then abort.
	lr := &io.LimitedReader{R: body, N: 2 * sendChunk}
	if _, err := (&bodyConn{rc}).ReadFrom(lr); err != nil {
		t.Fatal(err)
	}
	if !u.abort() {
		t.Fatal("abort before the last byte failed")
	}
	lr = &io.LimitedReader{R: body, N: int64(len(data))}
	n, err := (&bodyConn{rc}).ReadFrom(lr)
	if !errors.Is(err, errReplaced) || n != 0 || rc.buf.Len() != 2*sendChunk {
		t.Errorf("ReadFrom after abort = %d, %v; %d bytes written in all", n, err, rc.buf.Len())
	}
}

// spyConn records whether the transport handed it a block body.
type spyConn struct {
	*bodyConn
	sawBlock *atomic.Bool
}

func (c spyConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*blockBody); ok {
			c.sawBlock.Store(true)
		}
	}
	return c.bodyConn.ReadFrom(r)
}

// TestBodyConnThroughTransport: net/http hands a PUT's block body to the
// connection's ReadFrom, which is what lets bodyConn write it straight
// from the block, and a real server receives it whole.
func TestBodyConnThroughTransport(t *testing.T) {
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
	}))
	defer srv.Close()
	var sawBlock atomic.Bool
	dial := dialer(&net.Dialer{})
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return spyConn{c.(*bodyConn), &sawBlock}, nil
	}}
	defer tr.CloseIdleConnections()

	data := bytes.Repeat([]byte("0123456789abcdef"), sendChunk/8+3)
	u, wd, stop := newTestUpload(data)
	defer stop()
	var open sync.WaitGroup
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/block", newBlockBody(u, wd, &open))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(data))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	open.Wait()
	if b := <-got; !bytes.Equal(b, data) {
		t.Errorf("server received %d bytes, want the %d of the block", len(b), len(data))
	}
	if !sawBlock.Load() {
		t.Error("the transport never handed the block body to the connection's ReadFrom")
	}
}

// TestFileSourceWithoutSendfile: a block that is a file's range goes
// out whole through a connection that is not TCP (read through a
// buffer) and through Read (as over TLS), and a file shorter than the
// range is an error naming it.
func TestFileSourceWithoutSendfile(t *testing.T) {
	data := make([]byte, 2*sendChunk+99)
	for i := range data {
		data[i] = byte(i * 13)
	}
	path := t.TempDir() + "/in"
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const off = 1000
	want := data[off:]
	newBody := func(size int) (*blockBody, *sync.WaitGroup, func()) {
		u, wd, stop := newTestUpload(nil)
		u.src = &blockSource{file: f, off: off, size: size}
		var open sync.WaitGroup
		return newBlockBody(u, wd, &open), &open, stop
	}

	body, _, stop := newBody(len(want))
	rc := &recordingConn{}
	n, err := (&bodyConn{rc}).ReadFrom(&io.LimitedReader{R: body, N: int64(len(want))})
	stop()
	if err != nil || n != int64(len(want)) || !bytes.Equal(rc.buf.Bytes(), want) {
		t.Errorf("ReadFrom of a file range = %d, %v; equal %v", n, err, bytes.Equal(rc.buf.Bytes(), want))
	}

	body, _, stop = newBody(len(want))
	got, err := io.ReadAll(body)
	stop()
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Read of a file range: %d bytes, %v", len(got), err)
	}

	body, _, stop = newBody(len(want) + 1) // one byte past the end of the file
	_, err = io.ReadAll(body)
	stop()
	if err == nil || !strings.Contains(err.Error(), "shorter than when the put started") || !strings.Contains(err.Error(), path) {
		t.Errorf("Read past the end of the file: %v", err)
	}
}
