package manifest

import (
	"fmt"
	"strings"
)

// Subset returns the part of m at path: the file of that name, as a
// manifest of one file named by its base name, or the files and empty
// directories under the directory of that name, with paths relative to
// it. An empty path (or ".") is all of m. A path naming nothing is an
// error.
func (m *Manifest) Subset(path string) (*Manifest, error) {
	path = strings.Trim(path, "/")
	if path == "" || path == "." {
		return m, nil
	}
	if err := checkPath(path); err != nil {
		return nil, fmt.Errorf("path %q: %w", path, err)
	}
	for _, f := range m.Files {
		if f.Path == path {
			_, base := splitPath(path)
			return &Manifest{Files: []File{{Path: base, Segments: f.Segments}}}, nil
		}
	}
	out := &Manifest{}
	prefix := path + "/"
	found := false
	for _, f := range m.Files {
		if rest, ok := strings.CutPrefix(f.Path, prefix); ok {
			out.Files = append(out.Files, File{Path: rest, Segments: f.Segments})
			found = true
		}
	}
	for _, d := range m.Dirs {
		if d == path {
			found = true
		} else if rest, ok := strings.CutPrefix(d, prefix); ok {
			out.Dirs = append(out.Dirs, rest)
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("no file or directory %q in the manifest", path)
	}
	return out, nil
}
