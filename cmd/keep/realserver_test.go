package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/proc/proctest"
	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/keeptest"
	"github.com/keepproject/keep/locator"
)

// volumeMaker returns a new volume for a server: its --volume argument,
// and the directory where its blocks are files DIR/xyz/HASH.
type volumeMaker func(t *testing.T) (arg, dir string)

// The client's write and read rules, against real keep server processes
// on directory volumes and on S3 buckets.
func TestClientAgainstServerProcesses(t *testing.T) {
	t.Run("directories", func(t *testing.T) {
		clientAgainstServers(t, func(t *testing.T) (string, string) {
			d := t.TempDir()
			return d, d
		})
	})
	t.Run("S3", func(t *testing.T) {
		s3srv := s3test.Start(t)
		endpoint := s3srv.TCPEndpoint(t)
		creds := filepath.Join(t.TempDir(), "s3-credentials")
		os.WriteFile(creds, []byte(s3srv.AccessKey+" "+s3srv.SecretKey), 0o600)
		clientAgainstServers(t, func(t *testing.T) (string, string) {
			b := s3srv.NewBucket(t)
			// prefix_length 3: the posix backend keeps the object
			// b/xyz/HASH as the file ROOT/b/xyz/HASH, a directory
			// volume's layout.
			return "s3://" + b + "?endpoint=" + endpoint + "&prefix_length=3&credentials_file=" + creds, filepath.Join(s3srv.Root, b)
		})
	})
}

func clientAgainstServers(t *testing.T, newVolume volumeMaker) {
	env := proctest.Env(t)
	var svcs []keepclient.Service
	var dirs []string
	for i := 0; i < 5; i++ {
		arg, dir := newVolume(t)
		svc, _ := startServer(t, env, i, "--volume", arg)
		svcs = append(svcs, svc)
		dirs = append(dirs, dir)
	}
	newClient := func(t *testing.T, svcs []keepclient.Service) *keepclient.Client {
		kc, err := keepclient.New(keepclient.Options{Services: svcs, Token: "tok", RetryDelay: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(kc.Close)
		return kc
	}
	on := func(hash string) []int {
		var out []int
		for i, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, hash[:3], hash)); err == nil {
				out = append(out, i)
			}
		}
		return out
	}
	index := func(s keepclient.Service) int {
		for i := range svcs {
			if svcs[i].UUID == s.UUID {
				return i
			}
		}
		return -1
	}

	t.Run("first N in probe order", func(t *testing.T) {
		kc := newClient(t, svcs)
		for n := 1; n <= 3; n++ {
			data := []byte(fmt.Sprint("probe order ", n))
			res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: n})
			if err != nil || res.Replicas != n {
				t.Fatalf("Put: %v", err)
			}
			var want []int
			for _, s := range keepclient.ProbeOrder(res.Locator.Hash, svcs)[:n] {
				want = append(want, index(s))
			}
			if got := on(res.Locator.Hash); !sameInts(got, want) {
				t.Errorf("N=%d: on servers %v, want %v", n, got, want)
			}
			if len(res.Locator.Hints) != 0 {
				t.Errorf("unsigned server returned hints: %s", res.Locator)
			}
			back, err := kc.Get(context.Background(), res.Locator, nil)
			if err != nil || !bytes.Equal(back, data) {
				t.Errorf("Get: %v", err)
			}
		}
	})

	t.Run("read falls back when a copy is lost or corrupt", func(t *testing.T) {
		kc := newClient(t, svcs)
		data := bytes.Repeat([]byte("fallback "), 10000)
		res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 2})
		if err != nil {
			t.Fatal(err)
		}
		order := keepclient.ProbeOrder(res.Locator.Hash, svcs)
		h := res.Locator.Hash
		first, second := dirs[index(order[0])], dirs[index(order[1])]
		// Corrupt the first copy in place, same length.
		bad := append([]byte{}, data...)
		bad[100] ^= 1
		if err := os.WriteFile(filepath.Join(first, h[:3], h), bad, 0o644); err != nil {
			t.Fatal(err)
		}
		back, err := kc.Get(context.Background(), res.Locator, nil)
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("Get with a corrupt first copy: %v", err)
		}
		// Lose the second copy too: a clear error, not corrupt data.
		os.Remove(filepath.Join(second, h[:3], h))
		if _, err := kc.Get(context.Background(), res.Locator, nil); err == nil {
			t.Fatal("Get returned data with one corrupt and one missing copy")
		}
		// Lose both: not found.
		os.Remove(filepath.Join(first, h[:3], h))
		var nf *keepclient.NotFoundError
		if _, err := kc.Get(context.Background(), res.Locator, nil); !errors.As(err, &nf) {
			t.Fatalf("Get of a lost block: %v", err)
		}
	})

	t.Run("full and read-only servers", func(t *testing.T) {
		fullVol, _ := newVolume(t)
		roVol, _ := newVolume(t)
		full, _ := startServer(t, env, 5, "--volume", fullVol, "--capacity", "1K")
		ro, _ := startServer(t, env, 6, "--read-only-volume", roVol)
		ro.ReadOnly = true
		all := append([]keepclient.Service{full, ro}, svcs...)
		kc := newClient(t, all)
		// Find a block whose probe order puts the full server first.
		var data []byte
		for i := 0; ; i++ {
			data = bytes.Repeat([]byte(fmt.Sprint("full ", i, " ")), 1000)
			if keepclient.ProbeOrder(locator.New(data).Hash, all)[0].UUID == full.UUID {
				break
			}
		}
		res, err := kc.Put(context.Background(), data, keepclient.PutOptions{Replicas: 3})
		if err != nil || res.Replicas != 3 {
			t.Fatalf("Put: %v", err)
		}
		fullAttempts := 0
		for _, a := range res.Attempts {
			if a.Service.UUID == ro.UUID {
				t.Error("read-only server written to")
			}
			if a.Service.UUID == full.UUID {
				fullAttempts++
				if a.Status != 507 {
					t.Errorf("full server answered %d", a.Status)
				}
			}
		}
		if fullAttempts != 1 {
			t.Errorf("full server tried %d times", fullAttempts)
		}
	})

	t.Run("killed server", func(t *testing.T) {
		vol, _ := newVolume(t)
		victim, d := startServer(t, env, 7, "--volume", vol)
		all := append([]keepclient.Service{victim}, svcs...)
		kc := newClient(t, all)
		d.Kill()
		keeptest.HoldPort(t, victim.Port)
		for i := 0; i < 5; i++ {
			res, err := kc.Put(context.Background(), []byte(fmt.Sprint("killed ", i)), keepclient.PutOptions{Replicas: 3})
			if err != nil || res.Replicas != 3 {
				t.Fatalf("Put with a killed server: %v", err)
			}
		}
	})
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[int]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		if m[x] == 0 {
			return false
		}
		m[x]--
	}
	return true
}
