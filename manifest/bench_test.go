package manifest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keepproject/keep/locator"
)

// benchManifest returns the text of a manifest of n 4 KiB files in 10
// directories, packed into 64 MiB blocks.
func benchManifest(b *testing.B, n int) string {
	b.Helper()
	var locs []locator.Locator
	var p *Packer
	p = NewPacker(0, func(ctx context.Context, index int, data []byte) error {
		locs = append(locs, locator.Locator{Hash: fmt.Sprintf("%032x", index), Size: int64(len(data)), Hints: []string{sig[1:]}})
		p.Release(data)
		return nil
	})
	ctx := context.Background()
	file := make([]byte, 4096)
	for i := range n {
		if err := p.AddFile(ctx, fmt.Sprintf("dir%d/file %05d", i%10, i), bytes.NewReader(file)); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	m, err := p.Manifest(locs)
	if err != nil {
		b.Fatal(err)
	}
	return m.Text()
}

func BenchmarkParse(b *testing.B) {
	text := benchManifest(b, 20000)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(text); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkText(b *testing.B) {
	m, err := Parse(benchManifest(b, 20000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(m.Text())))
	b.ReportAllocs()
	for b.Loop() {
		m.Text()
	}
}

func BenchmarkPacker(b *testing.B) {
	const fileSize = 4096
	file := strings.Repeat("x", fileSize)
	ctx := context.Background()
	var p *Packer
	p = NewPacker(1<<20, func(ctx context.Context, index int, data []byte) error {
		p.Release(data)
		return nil
	})
	b.SetBytes(fileSize)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := p.AddFile(ctx, fmt.Sprintf("f%d", i), strings.NewReader(file)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
