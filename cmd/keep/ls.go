package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/keepproject/keep/manifest"
)

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", "MANIFEST_FILE", "List the files of a manifest with their sizes in bytes.", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	text, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	m, err := manifest.Parse(string(text))
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	var total int64
	for _, f := range m.Files {
		fmt.Fprintf(stdout, "%12d  %s\n", f.Size(), f.Path)
		total += f.Size()
	}
	fmt.Fprintf(stdout, "%12d  total (%d files, %d blocks)\n", total, len(m.Files), len(m.Blocks()))
	return nil
}
