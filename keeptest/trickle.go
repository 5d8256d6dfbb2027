package keeptest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/keepproject/keep/locator"
)

// Trickle opens a connection to addr that sends a PUT announcing a whole
// 64 MiB block (with token), then one body byte, then a byte every tick
// (none, if tick is 0) until ctx ends or the connection breaks: the slow
// client a server must not let hold its slots. It returns the
// connection, closed when t ends.
func Trickle(ctx context.Context, t testing.TB, addr, token string, tick time.Duration) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hash := locator.New([]byte("never sent")).Hash
	if _, err := fmt.Fprintf(conn, "PUT /%s HTTP/1.1\r\nHost: keep\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\nx", hash, token, locator.MaxBlockSize); err != nil {
		t.Fatal(err)
	}
	if tick > 0 {
		go func() {
			tk := time.NewTicker(tick)
			defer tk.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tk.C:
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
	}
	return conn
}
