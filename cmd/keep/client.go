package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/keepclient"
)

// localToken is sent when neither ARVADOS_API_TOKEN nor KEEP_TOKEN is set. Servers
// started by "keep up" accept any token on writes and do not check
// signatures on reads.
const localToken = "keep-local"

// keepToken is the token sent to the Keep services res finds:
// ARVADOS_API_TOKEN, else KEEP_TOKEN (res.KeepToken), else localToken.
func keepToken(res *discovery.Resolver) string { return cmp.Or(res.KeepToken(), localToken) }

// clientFlags are the flags shared by commands that talk to Keep services.
type clientFlags struct {
	services   string
	passes     int
	requests   int
	progress   bool
	noProgress bool
}

// progressMode returns what the progress flags ask for.
func (f *clientFlags) progressMode() progressMode {
	switch {
	case f.noProgress:
		return progressOff
	case f.progress:
		return progressOn
	}
	return progressAuto
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.services, "services", "", "keep_services/accessible JSON `file` (default: ARVADOS_KEEP_SERVICES, ARVADOS_API_HOST, then the file written by 'keep up')")
	fs.IntVar(&f.passes, "passes", 3, "passes over the services before a block write or read gives up")
	fs.IntVar(&f.requests, "max-requests", 32, "most HTTP requests in flight at once")
	fs.BoolVar(&f.progress, "progress", false, "show a progress bar on stderr even when it is not a terminal")
	fs.BoolVar(&f.noProgress, "no-progress", false, "never show a progress bar (by default: when stderr is a terminal that is not receiving the data)")
}

// newClient discovers services and returns a client for them.
func (f *clientFlags) newClient(ctx context.Context, replicas int, classes []string, log *slog.Logger) (*keepclient.Client, *discovery.Resolver, error) {
	res := discovery.New(discovery.Config{ServicesFile: f.services})
	svcs, err := res.Services(ctx)
	if err != nil {
		return nil, nil, err
	}
	kc, err := keepclient.New(keepclient.Options{
		Services:       svcs,
		Refresh:        res.Refresh,
		Token:          keepToken(res),
		Replicas:       replicas,
		StorageClasses: classes,
		MaxPasses:      f.passes,
		MaxRequests:    f.requests,
		Logger:         log,
		Insecure:       res.Insecure(),
	})
	return kc, res, err
}

// unreachableHint returns a line explaining a failed transfer when none
// of the services accepts a connection at all, naming where the list
// came from; "" when some service answers. A stale default services file
// (left by a "keep up" that was killed) is the usual cause.
func unreachableHint(ctx context.Context, res *discovery.Resolver, svcs []keepclient.Service) string {
	if len(svcs) == 0 || ctx.Err() != nil || anyAccepts(ctx, svcs) {
		return ""
	}
	hint := fmt.Sprintf("none of the %d keep services from %s accepts connections", len(svcs), res.Source())
	if strings.HasPrefix(res.Source(), "default services file") {
		hint += ": is 'keep up' still running? Start it again, or pass --services FILE"
	}
	return hint
}

// anyAccepts reports whether any of svcs accepts a TCP connection within
// a second.
func anyAccepts(ctx context.Context, svcs []keepclient.Service) bool {
	var d net.Dialer
	for _, s := range svcs {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := d.DialContext(dctx, "tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
		cancel()
		if err == nil {
			c.Close()
			return true
		}
	}
	return false
}
