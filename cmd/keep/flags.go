package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// errUsage reports a command-line mistake already explained on stderr.
var errUsage = errors.New("usage error")

// usageError explains a command-line mistake in one line, points at
// --help and returns errUsage.
func usageError(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), "%s: %s\nRun '%s --help' for usage.\n", fs.Name(), fmt.Sprintf(format, args...), fs.Name())
	return errUsage
}

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

// flagsSet returns the names of the flags the command line set, for
// options whose default comes from elsewhere (a config file) unless a
// flag says.
func flagsSet(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// parse parses args with fs, allowing flags after positional arguments
// ("keep get MANIFEST -o DIR"), and returns the positional arguments.
// After "--" everything is positional.
// A flag mistake gets the flag package's one-line reason and a pointer
// to --help, which alone prints the whole usage.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	full := fs.Usage
	fs.Usage = func() {
		if helpAsked(args) {
			full()
		} else {
			fmt.Fprintf(fs.Output(), "Run '%s --help' for usage.\n", fs.Name())
		}
	}
	defer func() { fs.Usage = full }()
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage // explained by the flag package
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

// helpAsked reports whether args ask for help before any "--".
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--h", "--help":
			return true
		}
	}
	return false
}

// commandFlags are a subcommand's flags, as a struct of their values.
type commandFlags interface {
	// register defines the flags on fs.
	register(fs *flag.FlagSet)
	// check refuses, with a usage error, a command line that cannot
	// run: pos are its positional arguments.
	check(fs *flag.FlagSet, pos []string) error
}

// parseFlags registers f's flags on fs, parses args with parse (flags
// may follow the positional arguments) and has f check them; it
// returns the positional arguments.
func parseFlags(fs *flag.FlagSet, f commandFlags, args []string) ([]string, error) {
	f.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	return pos, f.check(fs, pos)
}

// parseLeadingFlags is parseFlags for the commands whose flags must
// all come first (fs.Parse): a flag mistake prints their whole usage.
func parseLeadingFlags(fs *flag.FlagSet, f commandFlags, args []string) error {
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return f.check(fs, fs.Args())
}

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// readSecret reads a key or token from a file, without surrounding
// whitespace such as a final newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
