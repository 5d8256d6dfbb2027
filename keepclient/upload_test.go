package keepclient

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keepproject/keep/locator"
)

// An upload whose request has ended, answered or refused, is never
// replaced for lag, even once its service is marked down or slow: the
// writer may look at it between the end of its request and the arrival
// of its outcome, and a refusal is not a lag.
func TestEndedUploadNotReplaced(t *testing.T) {
	full := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "insufficient storage", http.StatusInsufficientStorage)
	}))
	defer full.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().(*net.TCPAddr).Port
	l.Close()
	fullPort := full.Listener.Addr().(*net.TCPAddr).Port
	for _, tt := range []struct {
		name   string
		port   int
		status int
	}{{"answered", fullPort, 507}, {"refused", refused, 0}} {
		t.Run(tt.name, func(t *testing.T) {
			svc := Service{UUID: "zzzzz-bi6l4-000000000000000", Host: "127.0.0.1", Port: tt.port, Type: TypeDisk}
			c, err := New(Options{Services: []Service{svc}, Token: "tok"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			data := []byte("ended")
			u := &upload{svc: svc, hash: locator.New(data).Hash, src: &blockSource{data: data}, requestID: "req-x", desired: 1}
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			u.cancel = cancel
			o := u.run(ctx, c)
			if o.status != tt.status {
				t.Fatalf("status %d (%s), want %d", o.status, o.msg, tt.status)
			}
			p := newWritePlan(u.hash, int64(len(data)), []Service{svc, {UUID: "zzzzz-bi6l4-000000000000001", Host: "h", Port: 1, Type: TypeDisk}}, 1, nil,
				lagRule{factor: 2, least: time.Millisecond}, testPasses(3, false), serviceHistory{})
			p.next()
			if reps, _ := p.lagging(time.Now().Add(time.Hour), func(int) progress { return u.progress(true) }); len(reps) != 0 {
				t.Errorf("ended upload found lagging: %+v", reps)
			}
			if u.abort() {
				t.Error("ended upload aborted")
			}
		})
	}
}
