package netbed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keepproject/keep/locator"
)

// scenarioRun is one run of a scenario: a testbed, a put and a get.
type scenarioRun struct {
	sc     scenario
	run    int
	bin    string
	env    []string
	src    string
	size   int64
	blocks []string // the hashes of src's blocks
	r      int64    // R, bits per second

	servers []*Host // set by do
}

// do builds the testbed in dir, puts and gets, and returns the two
// results.
func (sr scenarioRun) do(t *testing.T, dir string) []result {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	tb := New(t)
	victim := victimIndex(sr.blocks)
	clientRate := int64(float64(sr.r) * sr.sc.client)
	rates := sr.rates(victim)
	client, servers := sr.build(ctx, t, tb, dir, clientRate, rates)
	for _, s := range servers {
		sr.servers = append(sr.servers, s.Host)
	}
	svcFile, manifestFile := filepath.Join(dir, "services.json"), filepath.Join(dir, "manifest")
	if err := WriteServices(svcFile, sr.through(t, client, servers)); err != nil {
		t.Fatal(err)
	}
	put := sr.put(ctx, t, client, servers[victim].Host, svcFile, manifestFile)
	put.limit = PutLimit(clientRate, rates, scenarioN, len(sr.blocks))
	blocks, err := parseManifestFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	// The get's slow or cut server is the one it reads most blocks
	// from: the put may have left few copies on the put's.
	if v := readVictim(servers, blocks); v != victim {
		victim, rates = v, sr.rates(v)
		for i, s := range servers {
			if err := s.Host.SetLink(ctx, Link{Rate: rates[i]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	get := sr.get(ctx, t, client, servers[victim].Host, svcFile, manifestFile, filepath.Join(dir, "out"))
	get.limit = GetLimit(clientRate, rates, len(sr.blocks))
	put.copies = sr.copies(t, servers, blocks)
	t.Logf("%s: put %.1f MB/s (limit %.1f), get %.1f MB/s (limit %.1f), %s\nservers' links during the put: %s\nduring the get: %s", sr.sc.name, put.rate()/1e6, put.limit/1e6, get.rate()/1e6, get.limit/1e6, put.copies, put.use, get.use)
	return []result{put, get}
}

// through returns the servers as the client is to reach them: with the
// scenario's rtt, through a Delay forwarder each, on the client's host.
func (sr scenarioRun) through(t *testing.T, client *Host, servers []*KeepServer) []*KeepServer {
	t.Helper()
	if sr.sc.rtt == 0 {
		return servers
	}
	out := make([]*KeepServer, len(servers))
	for i, s := range servers {
		target := netip.AddrPortFrom(netip.MustParseAddr(s.Service.Host), uint16(s.Service.Port))
		d, err := client.StartDelay(target, sr.sc.rtt/2)
		if err != nil {
			t.Fatal(err)
		}
		via := *s
		via.Service.Host, via.Service.Port = d.Addr().Addr().String(), int(d.Addr().Port())
		out[i] = &via
	}
	return out
}

// rates returns the servers' link rates with server victim's as the
// scenario says.
func (sr scenarioRun) rates(victim int) []int64 {
	rates := make([]int64, scenarioServers)
	for i := range rates {
		rates[i] = sr.r
	}
	rates[victim] = int64(float64(sr.r) * sr.sc.victim)
	return rates
}

// copies stops the servers, so that nothing is still being written,
// counts the copies of blocks and checks there are N of each.
func (sr scenarioRun) copies(t *testing.T, servers []*KeepServer, blocks []locator.Locator) string {
	t.Helper()
	for _, s := range servers {
		s.Process.Kill()
	}
	copies, err := CountCopies(servers, blocks)
	if err != nil {
		t.Fatal(err)
	}
	if copies.Min != scenarioN || copies.Max != scenarioN {
		t.Errorf("copies after the put: %s (per server %v), want %d of every block", copies, copies.PerServer, scenarioN)
	}
	return fmt.Sprintf("%s, per server %v, %d off their probe-order places", copies, copies.PerServer, offPlace(servers, blocks))
}

// build adds the client host and the server hosts with their links, and
// starts a keep server on each server host.
func (sr scenarioRun) build(ctx context.Context, t *testing.T, tb *Testbed, dir string, clientRate int64, rates []int64) (*Host, []*KeepServer) {
	t.Helper()
	client, err := tb.AddHost(ctx, "client", Link{Rate: clientRate})
	if err != nil {
		t.Fatal(err)
	}
	servers := make([]*KeepServer, len(rates))
	for i, rate := range rates {
		h, err := tb.AddHost(ctx, "s"+strconv.Itoa(i), Link{Rate: rate})
		if err != nil {
			t.Fatal(err)
		}
		servers[i], err = h.StartKeepServer(ctx, sr.bin, sr.env, serviceUUID(i), filepath.Join(dir, "volume"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
	}
	return client, servers
}

// put runs keep put of the data on client, writing the manifest to
// manifestFile.
func (sr scenarioRun) put(ctx context.Context, t *testing.T, client, victim *Host, svcFile, manifestFile string) result {
	t.Helper()
	args := append([]string{"put", "--no-cache", "--no-progress", "--replicas", strconv.Itoa(scenarioN), "--services", svcFile}, strings.Fields(*putFlags)...)
	cmd := client.Command(sr.bin, append(args, sr.src)...)
	cmd.Env = sr.env
	_, sent, err := client.Traffic()
	if err != nil {
		t.Fatal(err)
	}
	// The cut comes once a third of the copies have left the client.
	mid := sent + int64(scenarioN)*sr.size/3
	reached := func() (bool, error) {
		_, s, err := client.Traffic()
		return s >= mid, err
	}
	out, res := sr.timed(ctx, t, client, victim, cmd, reached, "put")
	if err := os.WriteFile(manifestFile, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return res
}

// get runs keep get of the manifest on client into out, and checks
// that out has the data.
func (sr scenarioRun) get(ctx context.Context, t *testing.T, client, victim *Host, svcFile, manifestFile, out string) result {
	t.Helper()
	args := append([]string{"get", "--no-progress", "--services", svcFile}, strings.Fields(*getFlags)...)
	cmd := client.Command(sr.bin, append(args, manifestFile, "-o", out)...)
	cmd.Env = sr.env
	received, _, err := client.Traffic()
	if err != nil {
		t.Fatal(err)
	}
	mid := received + sr.size/3
	reached := func() (bool, error) {
		r, _, err := client.Traffic()
		return r >= mid, err
	}
	_, res := sr.timed(ctx, t, client, victim, cmd, reached, "get")
	if same, err := sameFile(sr.src, out); err != nil || !same {
		t.Errorf("keep get wrote other data than was put (%v)", err)
	}
	os.Remove(out)
	return res
}

// timed runs cmd on client and times it, cutting victim off meanwhile
// if the scenario says so, once reached reports true.
func (sr scenarioRun) timed(ctx context.Context, t *testing.T, client, victim *Host, cmd *exec.Cmd, reached func() (bool, error), op string) (string, result) {
	t.Helper()
	res := result{scenario: sr.sc.name, op: op, run: sr.run, bytes: sr.size, load: loadavg()}
	stop := func() (string, error) { return "", nil }
	if sr.sc.cut {
		stop = cutDuring(ctx, victim, reached, *scenarioCut)
	}
	// A put loads the servers' links toward them, a get from them.
	stopSampling := sampleLinks(ctx, sr.servers, op == "get")
	start := time.Now()
	out, _, err := client.Run(ctx, cmd)
	res.seconds = time.Since(start).Seconds()
	res.use = formatUse(stopSampling())
	if st := cmd.ProcessState; st != nil {
		res.cpu = (st.UserTime() + st.SystemTime()).Seconds()
	}
	what, cutErr := stop()
	if err = errors.Join(err, cutErr); err != nil {
		t.Fatal(err)
	}
	res.load += " → " + loadavg()
	if what != "" {
		res.note = what
		t.Logf("%s: %s", op, what)
	}
	return out, res
}

// rate returns the result's bytes per second.
func (r result) rate() float64 { return float64(r.bytes) / r.seconds }

// cutDuring cuts h's link once reached reports true, polling it, and
// restores it after d or when stop is called, whichever comes first.
// stop waits for the link to be restored and says what happened.
func cutDuring(ctx context.Context, h *Host, reached func() (bool, error), d time.Duration) (stop func() (string, error)) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var what string
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		what, err = cutOnce(ctx, h, reached, d)
	}()
	return func() (string, error) {
		cancel()
		wg.Wait()
		return what, err
	}
}

// cutOnce waits (polling) until reached, cuts h's link, and restores it
// after d or once ctx ends.
func cutOnce(ctx context.Context, h *Host, reached func() (bool, error), d time.Duration) (string, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := reached()
		if err != nil {
			return "", err
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return "the transfer ended before the cut", nil
		case <-tick.C:
		}
	}
	if err := h.Cut(ctx); err != nil {
		return "", err
	}
	start := time.Now()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
	held := time.Since(start)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := h.Restore(rctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s cut off for %.1f s", h.Name(), held.Seconds()), nil
}

// parseManifestFile reads and parses a manifest file keep put wrote.
func parseManifestFile(path string) ([]locator.Locator, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseManifest(string(data))
}
