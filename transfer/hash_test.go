package transfer

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"io"
	"testing"
)

func TestStreamHasher(t *testing.T) {
	// Three "files" of awkward sizes through one hasher with 10-byte
	// blocks must give the MD5 of each 10-byte slice of their
	// concatenation.
	files := [][]byte{[]byte("abcdefghijklm"), []byte(""), []byte("nopqrstuvwxyz0123456789")}
	s := newStreamHasher(10)
	var all []byte
	for _, f := range files {
		got, err := io.ReadAll(s.reader(bytes.NewReader(f)))
		if err != nil || !bytes.Equal(got, f) {
			t.Fatalf("read %q, %v", got, err)
		}
		all = append(all, f...)
	}
	for i := 0; i*10 < len(all); i++ {
		block := all[i*10 : min(len(all), (i+1)*10)]
		want := md5.Sum(block)
		if got := s.sum(i, len(block)); got != hex.EncodeToString(want[:]) {
			t.Errorf("block %d: %s, want %x", i, got, want)
		}
	}
	if got := s.sum(9, 10); got != "" {
		t.Errorf("unknown block gave %q", got)
	}
}
