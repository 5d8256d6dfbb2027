package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/keepproject/keep/internal/arvconfig"
)

// configFlags are the flags of keep server and keep proxy that name an
// Arvados cluster configuration (--config) and this process's entry in
// it (--cluster, --internal-url).
type configFlags struct {
	file, clusterID, internalURL string
}

// register registers the flags on fs: the file gives what reads says,
// self names what runs ("server") and service is its key under
// Services ("Keepstore").
func (c *configFlags) register(fs *flag.FlagSet, reads, self, service string) {
	fs.StringVar(&c.file, "config", "", "read "+reads+" from an Arvados cluster configuration `file`, such as /etc/arvados/config.yml")
	fs.StringVar(&c.clusterID, "cluster", "", "the cluster `id` to use when the --config file configures several")
	fs.StringVar(&c.internalURL, "internal-url", "", "with --config: this "+self+"'s `URL` among Services."+service+".InternalURLs (default $ARVADOS_SERVICE_INTERNAL_URL, else the only one whose host is this machine)")
}

// check refuses --cluster and --internal-url without --config; set
// holds the names of the flags given.
func (c *configFlags) check(fs *flag.FlagSet, set map[string]bool) error {
	if c.file == "" && (set["cluster"] || set["internal-url"]) {
		return usageError(fs, "--cluster and --internal-url need --config")
	}
	return nil
}

// loadConfig reads the --config file and picks this process's entry in
// it with pick ((*arvconfig.Cluster).Self or Proxy): the one
// --internal-url or $ARVADOS_SERVICE_INTERNAL_URL names, else the only
// one on this host.
func loadConfig[E any](c *configFlags, pick func(*arvconfig.Cluster, string, func(string) bool) (E, error)) (*arvconfig.Cluster, E, error) {
	var none E
	cluster, err := arvconfig.ReadFile(c.file, c.clusterID)
	if err != nil {
		return nil, none, err
	}
	e, err := pick(cluster, cmp.Or(c.internalURL, os.Getenv("ARVADOS_SERVICE_INTERNAL_URL")), arvconfig.IsLocal)
	return cluster, e, withURLHint(err)
}

// withURLHint adds to an error from picking this host's internal URL
// how to name it.
func withURLHint(err error) error {
	if errors.Is(err, arvconfig.ErrNotThisHost) || errors.Is(err, arvconfig.ErrSeveralOnHost) {
		return fmt.Errorf("%w; choose one with --internal-url", err)
	}
	return err
}
