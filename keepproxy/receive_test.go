package keepproxy

import (
	"bytes"
	"crypto/md5"
	"hash/crc32"
	"testing"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// TestReceiveGrows: a body is read whole, hashed, into a buffer sized by
// its length, with every smaller buffer it grew through back in the pool.
func TestReceiveGrows(t *testing.T) {
	p := newBenchProxy(t)
	for _, size := range []int{1, minBuffer, minBuffer + 1, 3<<20 + 7} {
		data := bytes.Repeat([]byte{'k'}, size)
		h := md5.New()
		buf, err := p.receive(bytes.NewReader(data), size, h)
		if err != nil || !bytes.Equal(buf, data) || !bytes.Equal(h.Sum(nil), md5Sum(data)) {
			t.Fatalf("receive of %d bytes: %v, got %d bytes", size, err, len(buf))
		}
		if cap(buf) != classSize(classOf(size)) {
			t.Errorf("receive of %d bytes: buffer of %d", size, cap(buf))
		}
		p.writeBufs.put(buf)
		if held, idle := p.writeBufs.usage(); held != idle {
			t.Errorf("receive of %d bytes: %d of %d bytes still in use", size, held-idle, held)
		}
	}
	if _, err := p.receive(bytes.NewReader([]byte("short")), 10, md5.New()); err == nil {
		t.Error("a body shorter than its length was accepted")
	}
}

func md5Sum(b []byte) []byte { s := md5.Sum(b); return s[:] }

func newBenchProxy(tb testing.TB) *Proxy {
	kc, err := keepclient.New(keepclient.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	p := NewWithOptions(kc, Options{MaxWrites: 2})
	tb.Cleanup(func() { p.Close(); kc.Close() })
	return p
}

// BenchmarkReceive64MiB measures receiving a whole block into a growing
// buffer, with a cheap hash so that the copying shows.
func BenchmarkReceive64MiB(b *testing.B) {
	p := newBenchProxy(b)
	data := make([]byte, locator.MaxBlockSize)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		buf, err := p.receive(bytes.NewReader(data), len(data), crc32.NewIEEE())
		if err != nil {
			b.Fatal(err)
		}
		p.writeBufs.put(buf)
	}
}
