// Package netbed builds a network of hosts on this machine for tests:
// each host is a Linux network namespace with one veth link to a bridge,
// an address from a private range assigned inside that namespace, and
// its link shaped both ways with tc's token bucket filter (tbf) to a
// chosen rate. Real processes (keep servers, keep put and get) run
// inside the hosts, and a host's link can be slowed, cut and restored
// while they run.
//
// Everything a Testbed makes (namespaces, the bridge, veth pairs, the
// processes in its hosts) carries a name prefix made of "nb", this
// process's id and two random letters, and is removed by Close, which
// New registers with t.Cleanup (so it runs when a test passes, fails or
// panics). A test binary that was killed cannot clean up: the next New
// removes what any testbed of a process that no longer exists left
// behind (Sweep).
//
// Traffic stays on this machine: the bridge and the root namespace get
// no address, no route and no filter rule; only the namespaces a
// Testbed created get addresses. The root namespace sees only the
// bridge and the host ends of the veth pairs, created and deleted here.
//
// It needs root and the ip and tc commands of iproute2; without them New
// skips the test with one line saying what is missing. The kernels this
// runs on have no netem, so latency is not available from tc.
package netbed
