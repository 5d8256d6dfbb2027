package keepclient_test

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
)

// blackhole returns a loopback port that accepts one connection and then
// leaves every further connection attempt unanswered, like a host that
// drops packets: a listening socket with a full backlog that never
// accepts.
func blackhole(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	// Fill the backlog.
	c, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(c) })
	if err := syscall.Connect(c, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	return port
}

func TestPutConnectTimeout(t *testing.T) {
	c := keeptest.NewCluster(t, 2)
	hole := keepclient.Service{UUID: "zzzzz-bi6l4-blackhole000000", Host: "127.0.0.1", Port: blackhole(t), Type: keepclient.TypeDisk}
	svcs := append(c.Services(), hole)
	// Find a block that the unreachable service is first in line for.
	var data []byte
	for i := 0; data == nil; i++ {
		d, h := block(strings.Repeat("x", i+1))
		if keepclient.ProbeOrder(h, svcs)[0].UUID == hole.UUID {
			data = d
		}
	}
	kc := newClient(t, c, func(o *keepclient.Options) {
		o.Services = svcs
		o.ConnectTimeout = 2 * time.Second // the healthy servers always connect in that time; the black hole never does
		o.StallTimeout = time.Minute       // only the connect timeout can end it
		o.LagMin = time.Hour               // nor replacement for lag
	})
	res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
	if err != nil || res.Replicas != 2 {
		t.Fatalf("Put: %v", err)
	}
	var timedOut bool
	for _, a := range res.Attempts {
		if a.Service.UUID == hole.UUID && a.Status == 0 && strings.Contains(a.Message, "timeout") {
			timedOut = true
		}
	}
	if !timedOut {
		t.Errorf("no connect timeout in %+v", res.Attempts)
	}
}
