package netbed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/keepproject/keep/internal/proc"
	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// A KeepServer is a keep server process on a host, with one directory
// volume.
type KeepServer struct {
	// Host is where the server runs.
	Host *Host
	// Process is the server process.
	Process *proc.Process
	// Service is how clients find the server: a disk service at the
	// host's address.
	Service keepclient.Service
	// Volume is the server's volume directory, where its blocks can be
	// counted (CountCopies).
	Volume string
}

// serverReady is the line a keep server logs once it serves.
var serverReady = regexp.MustCompile(`keep server listening`)

// serverLogTail is how much of a server's output is kept, for error
// messages: servers log every request.
const serverLogTail = 64 << 10

// StartKeepServer runs "keep server" from the binary bin on h, in the
// environment env, serving the directory volume (created if need be) at
// h's address on a port of its choosing, with args added to its flags,
// and waits until it serves (ctx bounds the wait). uuid names the
// service for clients: the probe order comes from it.
func (h *Host) StartKeepServer(ctx context.Context, bin string, env []string, uuid, volume string, args ...string) (*KeepServer, error) {
	if err := os.MkdirAll(volume, 0o755); err != nil {
		return nil, fmt.Errorf("netbed: host %s: keep server volume: %w", h.name, err)
	}
	addrFile := filepath.Clean(volume) + ".addr"
	flags := append([]string{"server", "--listen", h.addr.String() + ":0", "--volume", volume}, args...)
	cmd := h.Command(bin, flags...)
	cmd.Env = env
	p, addr, err := h.Listen(ctx, cmd, proc.NewLog(serverLogTail), addrFile, serverReady)
	if err != nil {
		return nil, err
	}
	svc := keepclient.Service{UUID: uuid, Host: addr.Addr().String(), Port: int(addr.Port()), Type: keepclient.TypeDisk}
	return &KeepServer{Host: h, Process: p, Service: svc, Volume: volume}, nil
}

// WriteServices writes the services file (keep_services/accessible
// JSON, for --services) that lists servers.
func WriteServices(path string, servers []*KeepServer) error {
	svcs := make([]keepclient.Service, len(servers))
	for i, s := range servers {
		svcs[i] = s.Service
	}
	data, err := keepclient.MarshalServices(svcs)
	if err != nil {
		return fmt.Errorf("netbed: services file: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("netbed: services file: %w", err)
	}
	return nil
}

// Copies is how many copies of each block the servers' volumes hold.
type Copies struct {
	// Blocks is the number of distinct non-empty blocks counted.
	Blocks int
	// Min and Max are the fewest and most copies of a block.
	Min, Max int
	// PerServer is the number of blocks each server's volume holds, in
	// the order of the servers given.
	PerServer []int
}

// String describes the copies, such as "8 blocks, 2 copies each" or "8
// blocks, 2 to 3 copies".
func (c Copies) String() string {
	s := strconv.Itoa(c.Blocks) + " blocks"
	if c.Blocks == 1 {
		s = "1 block"
	}
	if c.Min != c.Max {
		return fmt.Sprintf("%s, %d to %d copies", s, c.Min, c.Max)
	}
	return fmt.Sprintf("%s, %d copies each", s, c.Max)
}

// CountCopies counts the copies of blocks on the servers' volumes,
// where a keep server keeps a block as VOLUME/<first 3 hex digits of
// the hash>/<hash> (files being written have other names, so they do
// not count). Count once the servers have stopped, or the transfers
// they still work on (an upload the client abandoned) may be missed.
func CountCopies(servers []*KeepServer, blocks []locator.Locator) (Copies, error) {
	c := Copies{PerServer: make([]int, len(servers))}
	seen := make(map[string]bool)
	for _, b := range blocks {
		if b.Size == 0 || len(b.Hash) < 3 || seen[b.Hash] {
			continue
		}
		seen[b.Hash] = true
		n := 0
		for i, s := range servers {
			info, err := os.Lstat(filepath.Join(s.Volume, b.Hash[:3], b.Hash))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return Copies{}, fmt.Errorf("netbed: counting copies: %w", err)
			}
			if info.Mode().IsRegular() {
				n++
				c.PerServer[i]++
			}
		}
		if c.Blocks == 0 || n < c.Min {
			c.Min = n
		}
		c.Max = max(c.Max, n)
		c.Blocks++
	}
	return c, nil
}

// BinaryEnv names the environment variable that, when set, gives the
// path of the keep binary KeepBinary returns: to measure a build other
// than the working tree's.
const BinaryEnv = "KEEP_NETBED_BINARY"

// KeepBinary returns the keep binary to run in hosts: the one
// $KEEP_NETBED_BINARY names, else the working tree's, built once per
// test binary by proctest.Binary (which skips t in -short mode).
func KeepBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinaryEnv); p != "" {
		if testing.Short() {
			t.Skip("runs the keep binary; skipped in -short mode")
		}
		return p
	}
	return proctest.Binary(t)
}
