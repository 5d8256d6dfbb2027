package netbed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc"
)

// subnet is the private range hosts get their addresses from, in the
// namespaces a Testbed creates: the first host gets .2, the next .3.
// Testbeds never share a bridge, so several may use it at once. It is
// never changed.
var subnet = netip.MustParsePrefix("10.211.0.0/24")

// maxHosts is how many hosts one testbed may have: the addresses of
// subnet from .2 to .254.
const maxHosts = 253

// cleanupTimeout bounds Close when New's cleanup calls it.
const cleanupTimeout = time.Minute

// namePattern matches the names of everything a testbed makes: "nb",
// the creating process's id and two letters, then the part naming the
// object.
var namePattern = regexp.MustCompile(`^nb([0-9]+)([a-z]{2})`)

// A Testbed is a bridge and the hosts joined by it. Its methods may be
// called from several goroutines.
type Testbed struct {
	tools  tools
	prefix string // "nb" + pid + two letters: see namePattern
	bridge string

	mu      sync.Mutex // protects the fields below
	hosts   []*Host
	procs   []*proc.Process
	closers []func() error // forwarders in this process
	closed  bool
}

// New returns an empty testbed that Close removes, with everything in
// it, when t ends; it skips t if netbed cannot run here (Requirements),
// and first removes what killed test processes left behind (Sweep).
func New(t testing.TB) *Testbed {
	t.Helper()
	if err := Requirements(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := Sweep(ctx); err != nil {
		t.Logf("netbed: removing leftovers of earlier runs: %v", err)
	}
	tb, err := Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := tb.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return tb
}

// Requirements returns an error saying what is missing for a testbed to
// run here (root, ip, tc), or nil.
func Requirements() error {
	_, err := findTools()
	return err
}

// Open makes a testbed's bridge. The caller must Close the testbed.
func Open(ctx context.Context) (*Testbed, error) {
	t, err := findTools()
	if err != nil {
		return nil, err
	}
	letters := []byte{byte('a' + rand.IntN(26)), byte('a' + rand.IntN(26))}
	prefix := "nb" + strconv.Itoa(os.Getpid()) + string(letters)
	tb := &Testbed{tools: t, prefix: prefix, bridge: prefix + "br"}
	// No address on the bridge: the root namespace stays out of the
	// testbed's network. Bridged frames skip the root namespace's
	// netfilter hooks, which have nothing to do with the testbed.
	if _, err := tb.ip(ctx, "link", "add", tb.bridge, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0", "nf_call_arptables", "0"); err != nil {
		return nil, fmt.Errorf("netbed: creating the bridge %s: %w", tb.bridge, err)
	}
	if _, err := tb.ip(ctx, "link", "set", tb.bridge, "up"); err != nil {
		return nil, errors.Join(fmt.Errorf("netbed: bringing up the bridge %s: %w", tb.bridge, err), tb.Close(ctx))
	}
	return tb, nil
}

// Prefix returns the prefix of the names of everything the testbed
// makes: network namespaces, the bridge and veth devices.
func (tb *Testbed) Prefix() string { return tb.prefix }

// Hosts returns the hosts added so far, in the order they were added.
func (tb *Testbed) Hosts() []*Host {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]*Host(nil), tb.hosts...)
}

// ip runs the ip command.
func (tb *Testbed) ip(ctx context.Context, args ...string) (string, error) {
	return run(ctx, tb.tools.ip, args...)
}

// tc runs the tc command.
func (tb *Testbed) tc(ctx context.Context, args ...string) (string, error) {
	return run(ctx, tb.tools.tc, args...)
}

// Close kills every process started in the testbed's hosts and waits for
// them, then deletes the hosts' veth pairs and namespaces and the
// bridge. It carries on past failures and returns them all. Closing
// again does nothing.
func (tb *Testbed) Close(ctx context.Context) error {
	tb.mu.Lock()
	if tb.closed {
		tb.mu.Unlock()
		return nil
	}
	tb.closed = true
	procs, hosts, closers := tb.procs, tb.hosts, tb.closers
	tb.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	var errs []error
	for _, c := range closers {
		errs = append(errs, c())
	}
	for _, h := range hosts {
		errs = append(errs, h.remove(ctx))
	}
	if _, err := tb.ip(ctx, "link", "del", tb.bridge); err != nil && linkExists(tb.bridge) {
		errs = append(errs, fmt.Errorf("deleting the bridge: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netbed %s: removing the testbed: %w", tb.prefix, err)
	}
	return nil
}

// addCloser has Close call c, unless the testbed is closed already.
func (tb *Testbed) addCloser(c func() error) error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return fmt.Errorf("netbed %s: the testbed is closed", tb.prefix)
	}
	tb.closers = append(tb.closers, c)
	return nil
}

// linkExists reports whether the root namespace has a network device
// of that name.
func linkExists(name string) bool {
	_, err := os.Lstat("/sys/class/net/" + name)
	return err == nil
}
