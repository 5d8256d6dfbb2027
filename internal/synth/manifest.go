package synth

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
