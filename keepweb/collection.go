package keepweb

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// collection is one collection as a request sees it: its files read
// with the caller's client, and its directory tree.
type collection struct {
	// id names the collection in pages, file names and logs: as the
	// URL has it, but a locator cut down to hash+size, since a
	// signature is a capability (never logged, never in a saved file's
	// name).
	id   string
	kc   *keepclient.Client // with the caller's token
	tree tree
}

// tree is a manifest's files and directories by path ("" is the top).
type tree struct {
	files map[string]*manifest.File
	dirs  map[string][]entry // each directory's entries, sorted by name
}

// entry is one name in a directory.
type entry struct {
	name string
	dir  bool
	file *manifest.File // nil for a directory
}

// load returns the collection id for token: from Collections when it
// knows it, else, when id is a locator, the manifest stored as that
// block.
func (h *Handler) load(ctx context.Context, token, id string) (*collection, error) {
	kc := h.opts.Client.WithToken(token)
	loc, lerr := locator.Parse(id)
	var text string
	var err error
	if h.opts.Collections != nil && (lerr != nil || isPDH(loc)) {
		text, err = h.opts.Collections.Manifest(ctx, token, id)
		if err == nil {
			return newCollection(id, kc, text)
		}
		if lerr != nil || !errors.Is(err, ErrNotFound) {
			return nil, collectionError(id, err)
		}
	}
	if lerr != nil {
		return nil, errorf(http.StatusNotFound, "collection %q: not a portable data hash or locator, and no registry to ask (%v)", id, lerr)
	}
	data, err := kc.Get(ctx, loc, nil)
	if err != nil {
		return nil, collectionError(id, fmt.Errorf("reading the manifest %s: %w", loc.Bare(), err))
	}
	text = string(data)
	return newCollection(id, kc, text)
}

// isPDH reports whether l could be a portable data hash: a hash and a
// size, with no hints.
func isPDH(l locator.Locator) bool { return l.Size >= 0 && l.Bare().String() == l.String() }

// collectionError gives err the status it is answered with.
func collectionError(id string, err error) error {
	var nf *keepclient.NotFoundError
	var re *keepclient.ReadError
	switch {
	case errors.Is(err, ErrNotFound), errors.As(err, &nf):
		return &statusError{http.StatusNotFound, err}
	case errors.As(err, &re) && deniedEverywhere(re):
		return &statusError{http.StatusForbidden, fmt.Errorf("collection %s: the block servers refused the token: %w", id, err)}
	}
	return err
}

// deniedEverywhere reports whether every server refused the read as
// unauthorized (401, 403, or 400 for a bad signature).
func deniedEverywhere(re *keepclient.ReadError) bool {
	for _, r := range re.Services {
		switch r.Status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest:
		default:
			return false
		}
	}
	return len(re.Services) > 0
}

// newCollection parses text into a collection.
func newCollection(id string, kc *keepclient.Client, text string) (*collection, error) {
	m, err := manifest.Parse(text)
	if err != nil {
		return nil, errorf(http.StatusBadGateway, "collection %s is not a valid manifest: %v", id, err)
	}
	if l, err := locator.Parse(id); err == nil {
		id = l.Bare().String()
	}
	return &collection{id: id, kc: kc, tree: newTree(m)}, nil
}

// newTree returns m's directory tree.
func newTree(m *manifest.Manifest) tree {
	t := tree{files: make(map[string]*manifest.File), dirs: map[string][]entry{"": nil}}
	for i := range m.Files {
		f := &m.Files[i]
		t.files[f.Path] = f
		dir, name := path.Split(f.Path)
		dir = strings.TrimSuffix(dir, "/")
		t.addDir(dir)
		t.dirs[dir] = append(t.dirs[dir], entry{name: name, file: f})
	}
	for _, d := range m.Dirs {
		t.addDir(d)
	}
	for d, es := range t.dirs {
		slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.name, b.name) })
		t.dirs[d] = es
	}
	return t
}

// addDir records directory d and its ancestors, each as an entry of its
// parent.
func (t *tree) addDir(d string) {
	if _, ok := t.dirs[d]; ok || d == "" {
		return
	}
	parent, name := path.Split(d)
	parent = strings.TrimSuffix(parent, "/")
	t.addDir(parent)
	t.dirs[d] = nil
	t.dirs[parent] = append(t.dirs[parent], entry{name: name, dir: true})
}

// walk returns the files under directory d in name order, depth first,
// with the empty directories, as paths relative to d.
func (t *tree) walk(d string) (files []*manifest.File, rel []string, emptyDirs []string) {
	var visit func(dir, prefix string)
	visit = func(dir, prefix string) {
		es := t.dirs[dir]
		if len(es) == 0 && prefix != "" {
			emptyDirs = append(emptyDirs, prefix)
		}
		for _, e := range es {
			full := path.Join(dir, e.name)
			if e.dir {
				visit(full, prefix+e.name+"/")
			} else {
				files = append(files, e.file)
				rel = append(rel, prefix+e.name)
			}
		}
	}
	visit(d, "")
	return files, rel, emptyDirs
}
