package synth

import (
	"bufio"
	"crypto/md5"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WriteManifests writes the live set to dir as manifest files of
// Config.PerManifest blocks each (the last may have fewer), named
// m000000, m000001 and so on: every referenced block, in index order,
// as one file per manifest. It returns how many files it wrote.
func (c *Cluster) WriteManifests(dir string) (int, error) {
	files := 0
	var w *bufio.Writer
	var f *os.File
	inFile := 0
	var total int64
	var hexHash [32]byte
	closeFile := func() error {
		fmt.Fprintf(w, " 0:%d:blocks\n", total)
		if err := w.Flush(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	for i := range c.cfg.Blocks {
		if c.Kind(i) == Garbage {
			continue
		}
		if f == nil {
			var err error
			f, err = os.Create(filepath.Join(dir, fmt.Sprintf("m%06d", files)))
			if err != nil {
				return files, err
			}
			files++
			w = bufio.NewWriterSize(f, 256<<10)
			w.WriteString(".")
			inFile, total = 0, 0
		}
		c.hexHash(i, hexHash[:])
		size := Size(hexHash[:])
		w.WriteByte(' ')
		w.Write(hexHash[:])
		w.WriteByte('+')
		w.WriteString(strconv.FormatInt(size, 10))
		total += size
		if inFile++; inFile == c.cfg.PerManifest {
			if err := closeFile(); err != nil {
				return files, err
			}
			f = nil
		}
	}
	if f != nil {
		if err := closeFile(); err != nil {
			return files, err
		}
	}
	return files, nil
}

// FilesManifest returns the text of a manifest of n files of up to 8
// KiB, 1000 to a directory (./dir0000/file000000.dat, ...), packed into
// 64 MiB blocks as keep put writes them: for the tests and measurements
// of keep mount's tree. The blocks are named, not stored.
func FilesManifest(n int) string {
	var b strings.Builder
	for d := 0; d*1000 < n; d++ {
		var sizes []int64
		var total int64
		for i := d * 1000; i < min(n, (d+1)*1000); i++ {
			s := int64(i*7919) % 8192
			sizes = append(sizes, s)
			total += s
		}
		fmt.Fprintf(&b, "./dir%04d", d)
		for blk := int64(0); blk*(64<<20) < max(total, 1); blk++ {
			size := min(total-blk*(64<<20), 64<<20)
			fmt.Fprintf(&b, " %x+%d", md5.Sum(fmt.Appendf(nil, "%d/%d", d, blk)), size)
		}
		var pos int64
		for j, s := range sizes {
			fmt.Fprintf(&b, " %d:%d:file%06d.dat", pos, s, d*1000+j)
			pos += s
		}
		b.WriteString("\n")
	}
	return b.String()
}
