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

	"github.com/keepproject/keep/internal/version"
)

// command is one subcommand: it parses its own flags from args.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() map[string]command {
	return map[string]command{
		"put":      {"write files and directories as replicated blocks; print the manifest", runPut},
		"get":      {"read a block or a manifest's files back, verified", runGet},
		"ls":       {"list the files in a manifest", runLs},
		"mount":    {"mount manifests as a read-only filesystem (FUSE)", runMount},
		"server":   {"run a block server (keepstore-compatible)", runServer},
		"proxy":    {"run a proxy that fans uploads out to block servers", runProxy},
		"up":       {"run a local cluster in the foreground", runUp},
		"demo":     {"self-contained demonstration of replicated writes and faults", runDemo},
		"bench":    {"measure put/get throughput against a local cluster", runBench},
		"check":    {"show which servers hold each block of manifests, against the wanted count", runCheck},
		"balance":  {"pull and trash blocks to bring them to their wanted copies (dry run unless --commit)", runBalance},
		"registry": {"run the collection registry (collections and tokens, an Arvados API subset)", runRegistry},
		"token":    {"create, list and revoke the tokens the registry accepts", runToken},
		"web":      {"serve collections over HTTP and WebDAV for browsers and file managers (read-only)", runWeb},
		"version":  {"print which build of keep this is (also: keep --version)", runVersion},
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
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'keep <command> --help' for a command's flags.")
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run runs the command line args and returns the exit status: 0, 1 for
// a failure, 2 for a usage error, 130 when interrupted.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help":
		usage(stdout)
		return 0
	case "help":
		if len(args) == 1 {
			usage(stdout)
			return 0
		}
		args = []string{args[1], "--help"} // keep help put = keep put --help
	case "--version", "-version":
		args = append([]string{"version"}, args[1:]...)
	}
	name := args[0]
	cmd, ok := commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "keep: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal starts a graceful stop, a second one kills.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := cmd.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage), errors.Is(err, errPending):
		return 2
	case ctx.Err() != nil:
		// Interrupted: one line, whatever the command was doing. Nothing
		// half-written is left (get writes temporary files, put prints
		// no manifest).
		fmt.Fprintf(stderr, "keep %s: interrupted\n", name)
		return 130
	default:
		fmt.Fprintf(stderr, "keep %s: %v\n", name, err)
		return 1
	}
}

// runVersion prints which build this is, as the servers' start-up logs
// and health answers name it.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", "Print which build of keep this is: its module version, else the VCS revision\nand time it was built from (\"+dirty\" when the tree had changes), else\n\"devel\"; then the Go version.", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError(fs, "takes no arguments")
	}
	fmt.Fprintln(stdout, "keep", version.String())
	return nil
}
