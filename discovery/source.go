package discovery

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/keepproject/keep/keepclient"
)

// A source is one place services can come from. String describes it for
// messages; fetch errors already name it.
type source interface {
	fetch(ctx context.Context) ([]keepclient.Service, error)
	String() string
}

// fileSource reads a keep_services/accessible JSON file on every fetch.
type fileSource struct {
	desc, path string
	missing    error  // returned instead if the file does not exist; nil means report it plainly
	hint       string // appended to other errors
}

func (f fileSource) String() string { return f.desc }

func (f fileSource) fetch(context.Context) ([]keepclient.Service, error) {
	data, err := os.ReadFile(f.path)
	if err != nil {
		if f.missing != nil && errors.Is(err, fs.ErrNotExist) {
			return nil, f.missing
		}
		return nil, fmt.Errorf("keep services from %s: %w%s", f.desc, pathErr(err), f.hint)
	}
	svcs, err := keepclient.ParseServices(data)
	if err != nil {
		return nil, fmt.Errorf("keep services from %s: %w%s", f.desc, err, f.hint)
	}
	return svcs, nil
}

// staticSource is a list fixed by the configuration (ARVADOS_KEEP_SERVICES).
type staticSource struct {
	desc string
	svcs []keepclient.Service
}

func (s staticSource) String() string { return s.desc }

func (s staticSource) fetch(context.Context) ([]keepclient.Service, error) {
	return slices.Clone(s.svcs), nil
}

// errSource is a source whose configuration is broken, or no source at
// all (desc ""); fetch always fails with err.
type errSource struct {
	desc string
	err  error
}

func (e errSource) String() string { return e.desc }

func (e errSource) fetch(context.Context) ([]keepclient.Service, error) {
	if e.desc == "" {
		return nil, e.err
	}
	return nil, fmt.Errorf("keep services from %s: %w", e.desc, e.err)
}

// WriteServicesFile writes svcs to path as a keep_services/accessible
// document, creating missing directories (mode 0700, as XDG asks for state
// directories). It replaces the file atomically, so a resolver reading it
// concurrently sees the old list or the new one, never half of one.
// "keep up" uses it with DefaultServicesFile.
func WriteServicesFile(path string, svcs []keepclient.Service) (err error) {
	data, err := keepclient.MarshalServices(svcs)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
