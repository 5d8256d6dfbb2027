package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/registry"
)

const tokenSummary = `Manage the tokens the cluster accepts, in the registry's database:

  keep token create NAME --scope read|write|admin   print a new token's secret
  keep token list                                   names, scopes, when made or revoked
  keep token revoke NAME                            refuse it from now on

A read token may read blocks and collections; write adds writing blocks
and creating, changing and trashing collections; admin adds managing the
registry. Block servers and proxies started with --registry accept
exactly these tokens (they cache an answer for up to a minute, so a
revoked token may work that much longer). The secret is shown once: the
registry keeps only its SHA-256.`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", "create NAME --scope SCOPE | list | revoke NAME", tokenSummary, stderr)
	var db dbFlags
	db.register(fs)
	scopeName := fs.String("scope", "", "with create: what the token may do, read, write or admin")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageError(fs, "say create, list or revoke")
	}
	verb, rest := pos[0], pos[1:]
	switch {
	case verb != "create" && verb != "list" && verb != "revoke":
		return usageError(fs, "unknown action %q: say create, list or revoke", verb)
	case verb == "list" && len(rest) != 0, verb != "list" && len(rest) != 1:
		return usageError(fs, "%s takes %s", verb, map[bool]string{true: "no arguments", false: "one token NAME"}[verb == "list"])
	case verb == "create" && *scopeName == "":
		return usageError(fs, "create needs --scope read, write or admin")
	case verb != "create" && *scopeName != "":
		return usageError(fs, "--scope goes with create")
	}
	dsn, err := db.dsn(fs)
	if err != nil {
		return err
	}
	var scope apiauth.Scope
	if verb == "create" {
		if scope, err = apiauth.ParseScope(*scopeName); err != nil {
			return usageError(fs, "--scope: %v", err)
		}
	}
	store, err := registry.Open(ctx, dsn)
	if err != nil {
		return dbError(err)
	}
	defer store.Close()
	switch verb {
	case "create":
		return createToken(ctx, store, rest[0], scope, stdout, stderr)
	case "revoke":
		if err := store.RevokeToken(ctx, rest[0], time.Now()); err != nil {
			return dbError(err)
		}
		fmt.Fprintf(stderr, "keep token: revoked %s (servers and proxies may accept it for up to a minute more, from their caches)\n", rest[0])
		return nil
	}
	return listTokens(ctx, store, stdout)
}

// createToken creates the token name with scope in store and prints its
// secret.
func createToken(ctx context.Context, store *registry.Store, name string, scope apiauth.Scope, stdout, stderr io.Writer) error {
	secret, err := store.CreateToken(ctx, name, scope, time.Now())
	if err != nil {
		return dbError(err)
	}
	fmt.Fprintln(stdout, secret)
	fmt.Fprintf(stderr, "keep token: created %s (%s); its secret is above and cannot be shown again\n", name, scope)
	return nil
}

// listTokens prints the tokens in store, revoked ones too.
func listTokens(ctx context.Context, store *registry.Store, stdout io.Writer) error {
	toks, err := store.Tokens(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSCOPE\tCREATED\tREVOKED")
	for _, t := range toks {
		revoked := "-"
		if !t.RevokedAt.IsZero() {
			revoked = t.RevokedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Name, t.Scope, t.CreatedAt.Format(time.RFC3339), revoked)
	}
	return w.Flush()
}
