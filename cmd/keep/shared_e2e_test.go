package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepclient"
)

// sharedCluster is three keep server processes on a real S3 server:
// servers 0 and 1 share bucket A (one volume, one uuid), server 2 has
// bucket B. Signatures last 2 s and trash 1 s, so that copies are soon
// old enough to trash and trash is soon deleted.
type sharedCluster struct {
	t         *testing.T
	env       []string
	s3        *s3test.Server
	buckets   [2]string // A, B
	svcs      []keepclient.Service
	svcFile   string
	tokenFile string
}

const (
	sharedTTL           = "2s"
	sharedTrashLifetime = "1s"
)

func newSharedCluster(t *testing.T) *sharedCluster {
	c := &sharedCluster{t: t, env: proctest.Env(t), s3: s3test.Start(t)}
	endpoint := c.s3.TCPEndpoint(t)
	creds := filepath.Join(t.TempDir(), "s3-credentials")
	os.WriteFile(creds, []byte(c.s3.AccessKey+"\n"+c.s3.SecretKey+"\n"), 0o600)
	c.tokenFile = filepath.Join(t.TempDir(), "system-token")
	os.WriteFile(c.tokenFile, []byte("shared-system-token\n"), 0o600)
	c.buckets = [2]string{c.s3.NewBucket(t), c.s3.NewBucket(t)}
	for i, b := range []string{c.buckets[0], c.buckets[0], c.buckets[1]} {
		url := "s3://" + b + "/keep?endpoint=" + endpoint + "&region=" + c.s3.Region + "&prefix_length=3&credentials_file=" + creds
		svc, _ := startServer(t, c.env, i, "--volume", url, "--system-token-file", c.tokenFile,
			"--signing-ttl", sharedTTL, "--blob-trash-lifetime", sharedTrashLifetime, "--blob-trash-check-interval", "200ms")
		c.svcs = append(c.svcs, svc)
	}
	data, _ := keepclient.MarshalServices(c.svcs)
	c.svcFile = filepath.Join(t.TempDir(), "services.json")
	os.WriteFile(c.svcFile, data, 0o644)
	return c
}

// block returns a file of one block whose probe order begins with the
// two servers sharing bucket A, so that a writer (or balancer) counting
// servers would take them for two copies.
func (c *sharedCluster) block(seed uint64) (path, hash string) {
	r := rand.New(rand.NewPCG(seed, 18))
	for {
		data := make([]byte, 1<<20)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		sum := md5.Sum(data)
		hash = hex.EncodeToString(sum[:])
		o := keepclient.ProbeOrder(hash, c.svcs)
		if o[2].UUID == c.svcs[2].UUID {
			path = filepath.Join(c.t.TempDir(), "file")
			os.WriteFile(path, data, 0o644)
			return path, hash
		}
	}
}

// put stores path at replicas and returns its manifest file.
func (c *sharedCluster) put(path string, replicas int) string {
	c.t.Helper()
	text, stderr, err := proctest.Run(c.t, c.env, nil, "put", "--services", c.svcFile, "--replicas", fmt.Sprint(replicas), "--no-cache", path)
	if err != nil {
		c.t.Fatalf("put --replicas %d: %v\n%s", replicas, err, stderr)
	}
	return writeManifest(c.t, text)
}

// in returns the buckets holding hash as a live object: "A", "B", "AB".
func (c *sharedCluster) in(hash string) string {
	out := ""
	for i, b := range c.buckets {
		if _, err := os.Stat(filepath.Join(c.s3.Root, b, "keep", hash[:3], hash)); err == nil {
			out += string(rune('A' + i))
		}
	}
	return out
}

// listsDone reports whether every server has worked its pull and trash
// lists to the end.
func (c *sharedCluster) listsDone() bool {
	return listsWorked(c.t, c.svcs, "shared-system-token")
}

// get reads a management API document with the system token.
func (c *sharedCluster) get(url string, v any) error {
	return getJSON(url, "shared-system-token", v)
}

// Two servers sharing a bucket are one volume to put, check and balance:
// a put at N=2 lands in both buckets; check counts the shared object
// once; balance with wanted 1 and 2 never trashes a referenced block
// below its wanted count, collects garbage through one server, and
// repairs a block whose two "copies" were one object.
func TestE2ESharedBucket(t *testing.T) {
	c := newSharedCluster(t)
	// The two servers on bucket A list one volume: same uuid, same device.
	var mounts [][]protocol.Mount
	for _, s := range c.svcs[:2] {
		var ms []protocol.Mount
		if err := c.get(s.URL()+"/mounts", &ms); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, ms)
	}
	if len(mounts[0]) != 1 || len(mounts[1]) != 1 || mounts[0][0].UUID != mounts[1][0].UUID || mounts[0][0].DeviceID != mounts[1][0].DeviceID {
		t.Fatalf("the servers of bucket A list %+v and %+v, want one volume", mounts[0], mounts[1])
	}

	// N=2 lands on two volumes, though the first two servers in probe
	// order share one.
	twoPath, two := c.block(1)
	twoMf := c.put(twoPath, 2)
	if got := c.in(two); got != "AB" {
		t.Fatalf("put --replicas 2 stored the block in bucket(s) %q, want A and B", got)
	}
	// N=1 lands on A: two servers list it, one copy.
	onePath, one := c.block(2)
	oneMf := c.put(onePath, 1)
	garbagePath, garbage := c.block(3)
	c.put(garbagePath, 1)
	if c.in(one) != "A" || c.in(garbage) != "A" {
		t.Fatalf("put --replicas 1: buckets %q and %q, want A", c.in(one), c.in(garbage))
	}

	out, err := runAdmin(t, c.env, c.svcFile, c.tokenFile, sharedTTL, "check", "--replicas", "2", twoMf, oneMf)
	if exitCode(err) != 1 || !strings.Contains(out, "ok:                      1 blocks") || !strings.Contains(out, "under-replicated:        1 blocks") {
		t.Fatalf("check --replicas 2: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, one) && !strings.Contains(line, "     2      1  under-replicated") {
			t.Errorf("check counts the shared object as more than one copy: %s", line)
		}
	}

	// Wanted 1, everything old: the shared object is one copy and stays;
	// the garbage is trashed once, then deleted.
	time.Sleep(3 * time.Second) // older than the 2 s signing TTL: a fixed age, not a race
	out, err = runAdmin(t, c.env, c.svcFile, c.tokenFile, sharedTTL, "balance", "--replicas", "1", "--commit", "--gc", twoMf, oneMf)
	if err != nil {
		t.Fatalf("balance --replicas 1: %v\n%s", err, out)
	}
	waitUntil(t, "the servers have worked their lists", c.listsDone)
	if c.in(garbage) != "" || c.in(one) != "A" || c.in(two) == "" {
		t.Fatalf("after balance --replicas 1: garbage in %q (want none), the one-copy block in %q (want A), the two-copy block in %q", c.in(garbage), c.in(one), c.in(two))
	}
	for _, mf := range []string{oneMf, twoMf} {
		if _, stderr, err := proctest.Run(t, c.env, nil, "get", "--services", c.svcFile, mf); err != nil {
			t.Fatalf("get %s after balance --replicas 1: %v\n%s", mf, err, stderr)
		}
	}

	// Wanted 2: the one-copy block is pulled into bucket B (never a
	// second copy onto A), and check is satisfied.
	out, err = runAdmin(t, c.env, c.svcFile, c.tokenFile, sharedTTL, "balance", "--replicas", "2", "--commit", twoMf, oneMf)
	if err != nil || !strings.Contains(out, "sent") {
		t.Fatalf("balance --replicas 2: %v\n%s", err, out)
	}
	waitUntil(t, "the servers have worked their lists", c.listsDone)
	if out, err := runAdmin(t, c.env, c.svcFile, c.tokenFile, sharedTTL, "check", "--replicas", "2", twoMf, oneMf); err != nil {
		t.Errorf("check --replicas 2 after balance: %v\n%s", err, out)
	}
	if c.in(one) != "AB" || c.in(two) != "AB" {
		t.Errorf("after balance --replicas 2: buckets %q and %q, want both in A and B", c.in(one), c.in(two))
	}
	out, _ = runAdmin(t, c.env, c.svcFile, c.tokenFile, sharedTTL, "check", "--replicas", "2", oneMf)
	if !bytes.Contains([]byte(out), []byte(mounts[0][0].UUID+"@"+c.svcs[0].UUID+","+c.svcs[1].UUID)) {
		t.Errorf("check does not name bucket A's volume with both its servers:\n%s", out)
	}
}
