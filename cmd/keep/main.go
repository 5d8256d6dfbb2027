// Command keep is the command-line interface to the keep block store:
// it writes and reads files as replicated blocks, runs block servers and
// proxies, starts local clusters, and benchmarks them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"put":    {"write files and directories as replicated blocks; print the manifest", runPut},
		"get":    {"read a block or a manifest's files back, verified", runGet},
		"ls":     {"list the files in a manifest", runLs},
		"server": {"run a block server (keepstore-compatible)", runServer},
		"proxy":  {"run a proxy that fans uploads out to block servers", runProxy},
		"up":     {"run a local cluster in the foreground", runUp},
		"demo":   {"self-contained demonstration of replicated writes and faults", runDemo},
		"bench":  {"measure put/get throughput against a local cluster", runBench},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: keep <command> [flags] [args]\n\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-7s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'keep <command> --help' for a command's flags.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage(os.Stderr)
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands()[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "keep: unknown command %q\n\n", os.Args[1])
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal starts a graceful stop, a second one kills.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := cmd.run(ctx, os.Args[2:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "keep %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// errUsage reports a command-line mistake already explained on stderr.
var errUsage = errors.New("usage error")

// newFlagSet returns a flag set for a subcommand whose usage text goes to stderr.
func newFlagSet(name, argsUsage, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("keep "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: keep %s [flags] %s\n\n%s\n\nflags:\n", name, argsUsage, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args with fs, allowing flags after positional arguments
// ("keep get MANIFEST -o DIR"), and returns the positional arguments.
// After "--" everything is positional.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
