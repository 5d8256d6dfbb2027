package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/keepproject/keep/discovery"
	"github.com/keepproject/keep/internal/arvapi"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// errNoRegistry explains what a collection name, uuid or --name needs.
var errNoRegistry = errors.New("collections are kept by the registry: set ARVADOS_API_HOST (the registry's host:port) and ARVADOS_API_TOKEN")

// registryClient returns a client of the registry (or Arvados API
// server) the environment names, or errNoRegistry.
func registryClient(res *discovery.Resolver) (*arvapi.Client, error) {
	if res.APIHost() == "" || res.Token() == "" {
		return nil, errNoRegistry
	}
	return arvapi.New(res.APIHost(), res.Token(), res.Insecure()), nil
}

// fromRegistry reads the collection id (uuid, portable data hash or
// name) from the registry, its manifest signed for our token, and
// returns the part at path.
func fromRegistry(ctx context.Context, api *arvapi.Client, id, path string) (*manifest.Manifest, error) {
	rec, err := api.Lookup(ctx, id)
	if err != nil {
		return nil, trustHint(err)
	}
	m, err := manifest.Parse(rec.ManifestText)
	if err != nil {
		return nil, fmt.Errorf("collection %s from the registry: %w", rec.UUID, err)
	}
	return m.Subset(path)
}

// trustHint adds to err, when it is a certificate the system does not
// trust, how to trust a private CA's.
func trustHint(err error) error {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknown) || errors.As(err, &verify) {
		return fmt.Errorf("%w (set SSL_CERT_FILE to the cluster's CA certificate, e.g. /etc/keep/ca.crt)", err)
	}
	return err
}

// resolveCollection returns the manifest arg names through the registry:
// a uuid, a name, or a portable data hash (which, if the registry has no
// collection of that hash, may be a manifest stored as a block: ok is
// then false, and the caller reads the block). Without a registry it
// fails for names and uuids, and leaves hashes to the caller.
func resolveCollection(ctx context.Context, res *discovery.Resolver, arg string) (m *manifest.Manifest, ok bool, err error) {
	// The part before the first "/" names the collection; the rest is a
	// path in it.
	id, path, _ := strings.Cut(arg, "/")
	_, lerr := locator.Parse(id)
	isHash := lerr == nil
	api, err := registryClient(res)
	if err != nil {
		if isHash {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("%s is not a file, a locator or HASH/PATH; as a collection name or uuid: %w", id, err)
	}
	defer api.Close()
	if isHash && !protocol.IsPDH(id) {
		return nil, false, nil // a locator with hints: a block
	}
	m, err = fromRegistry(ctx, api, id, path)
	if isHash && errors.Is(err, arvapi.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return m, true, nil
}
