package netbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// hostNamePattern is what a host's name may be: it becomes part of a
// namespace's name.
var hostNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// A Host is a network namespace with one link to the testbed's bridge.
type Host struct {
	tb   *Testbed
	name string
	ns   string     // the network namespace
	veth string     // the link's end in the root namespace; "eth0" in ns
	addr netip.Addr // eth0's address

	mu   sync.Mutex // protects link
	link Link       // as last set
}

// AddHost makes a host named name (lower-case letters, digits and '-')
// with its link shaped as link. The host's own end of the link is eth0,
// with the next free address of 10.211.0.0/24.
func (tb *Testbed) AddHost(ctx context.Context, name string, link Link) (*Host, error) {
	if !hostNamePattern.MatchString(name) {
		return nil, fmt.Errorf("netbed: host name %q: want lower-case letters, digits and '-', at most 32", name)
	}
	tb.mu.Lock()
	if tb.closed {
		tb.mu.Unlock()
		return nil, fmt.Errorf("netbed: adding host %s: the testbed is closed", name)
	}
	for _, h := range tb.hosts {
		if h.name == name {
			tb.mu.Unlock()
			return nil, fmt.Errorf("netbed: adding host %s: there is one already", name)
		}
	}
	i := len(tb.hosts)
	if i >= maxHosts {
		tb.mu.Unlock()
		return nil, fmt.Errorf("netbed: adding host %s: a testbed has at most %d hosts", name, maxHosts)
	}
	a := subnet.Addr().As4()
	a[3] = byte(i + 2)
	h := &Host{tb: tb, name: name, ns: tb.prefix + "-" + name, veth: tb.prefix + "h" + strconv.Itoa(i), addr: netip.AddrFrom4(a)}
	// Registered before it exists, so that Close removes what a
	// failure below leaves.
	tb.hosts = append(tb.hosts, h)
	tb.mu.Unlock()
	if err := h.create(ctx); err != nil {
		return nil, fmt.Errorf("netbed: adding host %s: %w", name, err)
	}
	if err := h.SetLink(ctx, link); err != nil {
		return nil, err
	}
	return h, nil
}

// create makes the namespace and the veth pair, joins the pair to the
// bridge and gives eth0 its address.
func (h *Host) create(ctx context.Context) error {
	tb := h.tb
	prefixLen := strconv.Itoa(subnet.Bits())
	steps := [][]string{
		{"netns", "add", h.ns},
		{"link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
		{"link", "set", h.veth, "master", tb.bridge, "up"},
		{"-n", h.ns, "addr", "add", h.addr.String() + "/" + prefixLen, "dev", "eth0"},
		{"-n", h.ns, "link", "set", "eth0", "up"},
		{"-n", h.ns, "link", "set", "lo", "up"},
	}
	for _, args := range steps {
		if _, err := tb.ip(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// Name returns the host's name, as given to AddHost.
func (h *Host) Name() string { return h.name }

// Addr returns the host's address.
func (h *Host) Addr() netip.Addr { return h.addr }

// Namespace returns the name of the host's network namespace, as ip
// netns lists it.
func (h *Host) Namespace() string { return h.ns }

// Device returns the name of the root namespace's end of the host's
// link.
func (h *Host) Device() string { return h.veth }

// remove kills what still runs in the host's namespace, then deletes
// its veth pair and its namespace. What is already gone is no error.
func (h *Host) remove(ctx context.Context) error {
	return removeHost(ctx, h.tb.tools, h.ns, h.veth)
}

// removeHost kills every process in the namespace ns and deletes the
// veth veth (both ends) and the namespace, carrying on past failures.
// Either name may be "".
func removeHost(ctx context.Context, t tools, ns, veth string) error {
	var errs []error
	if ns != "" && nsExists(ns) {
		errs = append(errs, killNamespace(ctx, t, ns))
	}
	// Deleting one end deletes both at once; deleting the namespace
	// alone would leave the root end until the kernel gets to it.
	if veth != "" {
		if _, err := run(ctx, t.ip, "link", "del", veth); err != nil && linkExists(veth) {
			errs = append(errs, err)
		}
	}
	if ns != "" {
		if _, err := run(ctx, t.ip, "netns", "del", ns); err != nil && nsExists(ns) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killNamespace kills with SIGKILL every process in the namespace ns:
// those its testbed started were killed and waited for already, so
// these are their children or the processes of a testbed whose test
// process was killed.
func killNamespace(ctx context.Context, t tools, ns string) error {
	out, err := run(ctx, t.ip, "netns", "pids", ns)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("killing process %d in namespace %s: %w", pid, ns, err))
		}
	}
	return errors.Join(errs...)
}

// nsExists reports whether ip netns knows a namespace of that name.
func nsExists(ns string) bool {
	_, err := os.Lstat("/run/netns/" + ns)
	return err == nil
}
