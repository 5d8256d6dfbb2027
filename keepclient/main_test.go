package keepclient_test

import (
	"net"
	"net/http/httptest"
	"strconv"
	"testing"

	"go.uber.org/goleak"

	"github.com/keepproject/keep/keepclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// diskService describes the loopback server srv as a disk service.
func diskService(srv *httptest.Server, uuid string) keepclient.Service {
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return keepclient.Service{UUID: uuid, Host: host, Port: p, Type: keepclient.TypeDisk}
}
