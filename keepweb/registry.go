package keepweb

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/keepproject/keep/internal/arvapi"
)

// APICollections finds collections in a keep registry or an Arvados API
// server, asked with each caller's token, so that it answers only what
// that token may read, with manifests signed for it.
type APICollections struct {
	// Host is the server's host[:port], reached over HTTPS.
	Host string
	// Insecure skips certificate checks (ARVADOS_API_HOST_INSECURE).
	Insecure bool
}

var _ Collections = APICollections{}

// Manifest returns the manifest of the collection id (uuid, portable
// data hash, else name), signed for token.
func (a APICollections) Manifest(ctx context.Context, token, id string) (string, error) {
	api := arvapi.New(a.Host, token, a.Insecure)
	defer api.Close()
	rec, err := api.Lookup(ctx, id)
	var se *arvapi.StatusError
	switch {
	case errors.Is(err, arvapi.ErrNotFound):
		return "", fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
		return "", &statusError{se.Status, err}
	case err != nil:
		return "", err
	}
	return rec.ManifestText, nil
}
