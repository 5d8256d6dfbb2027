package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/manifest"
)

func runLs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ls", "MANIFEST_FILE|COLLECTION[/PATH]", "List the files of a manifest, or of a collection of the registry (by name,\nuuid or portable data hash; ARVADOS_API_HOST and ARVADOS_API_TOKEN name the\nregistry), with their sizes in bytes.", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError(fs, "want one MANIFEST_FILE or COLLECTION, not %d arguments", len(pos))
	}
	m, err := lsTarget(ctx, pos[0])
	if err != nil {
		return err
	}
	var total int64
	for _, f := range m.Files {
		fmt.Fprintf(stdout, "%12d  %s\n", f.Size(), f.Path)
		total += f.Size()
	}
	fmt.Fprintf(stdout, "%12d  total (%d files, %d blocks)\n", total, len(m.Files), len(m.Blocks()))
	return nil
}

// readManifest reads and parses the manifest file at path. An empty file
// is an error: it is what a failed "keep put > FILE" leaves behind.
func readManifest(path string) (*manifest.Manifest, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(text)) == "" {
		return nil, fmt.Errorf("%s is empty, not a manifest (a failed 'keep put > %s' leaves an empty file)", path, path)
	}
	m, err := manifest.Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// lsTarget reads the manifest file arg, or else the collection it names
// in the registry.
func lsTarget(ctx context.Context, arg string) (*manifest.Manifest, error) {
	if _, err := os.Stat(arg); err == nil {
		return readManifest(arg)
	}
	m, ok, err := resolveCollection(ctx, discovery.New(discovery.Config{}), arg)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("%s: no such manifest file, and no collection of that hash in the registry", arg)
	}
	return m, nil
}
