package keepclient_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// A permission signature is a capability: errors never show it.
func TestPutErrorHasNoSignature(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	c.SetSigner(locator.Signer{Key: []byte("secret")})
	data, hash := block("signed leak")
	order := c.ProbeOrder(hash)
	order[1].SetDefault(keeptest.Response{Stall: true})
	kc := newClient(t, c, func(o *keepclient.Options) { o.LagMin = time.Hour })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := kc.Put(ctx, data, keepclient.PutOptions{Replicas: 2})
	if err != nil && strings.Contains(err.Error(), "+A") {
		t.Errorf("error leaks the permission signature: %v", err)
	}
}

// The transport may answer before it has finished reading the body; Put
// still returns only once nothing reads the caller's buffer any more, so
// the caller may reuse it at once (the race detector checks this).
func TestPutNeverReadsBufferAfterReturn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 1)
		r.Body.Read(b) // triggers 100 Continue
		w.WriteHeader(500)
	}))
	t.Cleanup(srv.Close)
	svc := diskService(srv, "zzzzz-bi6l4-000000000000001")
	kc, _ := keepclient.New(keepclient.Options{Services: []keepclient.Service{svc}, Replicas: 1, MaxPasses: 1})
	t.Cleanup(kc.Close)
	data := make([]byte, 8<<20)
	for i := 0; i < 40; i++ {
		kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 1})
		for j := range data { // caller reuses its buffer
			data[j] = byte(i)
		}
	}
}

// An untrusted TLS certificate is reported at once, in words, and not
// retried: no pass can cure it.
func TestUntrustedCertificateIsFinal(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	svc := diskService(srv, "zzzzz-bi6l4-selfsignedcert0")
	svc.TLS = true
	kc, err := keepclient.New(keepclient.Options{Services: []keepclient.Service{svc}, Replicas: 1, RetryDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	data, hash := block("tls")
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{})
	var ire *keepclient.InsufficientReplicasError
	if !errors.As(err, &ire) || ire.Passes != 1 || len(res.Attempts) != 1 || !strings.Contains(err.Error(), "TLS certificate not trusted") {
		t.Fatalf("Put: %v (attempts %+v)", err, res.Attempts)
	}
	loc, _ := locator.Parse(hash)
	_, err = kc.Get(context.Background(), loc, nil)
	var re *keepclient.ReadError
	if !errors.As(err, &re) || re.Passes != 1 || re.Temporary() || !strings.Contains(err.Error(), "TLS certificate not trusted") {
		t.Fatalf("Get: %v", err)
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the untrusted server", hits.Load())
	}
}
