package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// Config is what a Handler serves and how.
type Config struct {
	Store *Store
	// ClusterID is the five-character prefix of every uuid.
	ClusterID string
	// Signer signs the manifests read, and checks the signatures of those
	// written, with the key and TTL the block servers use. With no key,
	// manifests are neither signed nor checked.
	Signer locator.Signer
	// DefaultReplication is the copies wanted of a collection whose
	// replication_desired is unset (Collections.DefaultReplication).
	DefaultReplication int
	// TrashLifetime is how long a trashed collection stays recoverable
	// (Collections.DefaultTrashLifetime).
	TrashLifetime time.Duration
	// ServicesFile holds the block servers and proxies in Arvados'
	// keep_services list format, served as keep_services/accessible;
	// read again on every request, so that changes need no restart.
	ServicesFile string
	// Now is the clock; nil for time.Now.
	Now func() time.Time
	// Log gets one line per failed request; nil discards.
	Log *slog.Logger
}

// Limits on what a request may carry.
const (
	// MaxRequestBytes bounds a request body: a manifest of a million
	// blocks is about 100 MB, Arvados' default limit is 128 MiB.
	MaxRequestBytes = 128 << 20
	// maxServicesBytes bounds the services file.
	maxServicesBytes = 16 << 20
	// MaxReplication is the most copies a collection may want.
	MaxReplication = 100
)

// handler serves the registry API.
type handler struct {
	cfg Config
	mux *http.ServeMux
}

// route is one API call and the scope it needs (ScopeNone: no token).
type route struct {
	pattern string
	scope   apiauth.Scope
	serve   func(w http.ResponseWriter, r *http.Request, who Token)
}

// NewHandler returns the registry's HTTP API over cfg.Store.
func NewHandler(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultReplication <= 0 {
		cfg.DefaultReplication = 2
	}
	if cfg.TrashLifetime <= 0 {
		cfg.TrashLifetime = 14 * 24 * time.Hour
	}
	h := &handler{cfg: cfg, mux: http.NewServeMux()}
	// Who may call what, in one place.
	routes := []route{
		{"GET /discovery/v1/apis/arvados/v1/rest", apiauth.ScopeNone, h.discovery},
		{"GET /arvados/v1/config", apiauth.ScopeNone, h.config},
		{"GET /arvados/v1/users/current", apiauth.ScopeRead, h.currentUser},
		{"GET /arvados/v1/keep_services/accessible", apiauth.ScopeRead, h.services},
		{"GET /arvados/v1/collections", apiauth.ScopeRead, h.list},
		{"POST /arvados/v1/collections", apiauth.ScopeWrite, h.create},
		{"GET /arvados/v1/collections/{id}", apiauth.ScopeRead, h.get},
		{"PUT /arvados/v1/collections/{id}", apiauth.ScopeWrite, h.update},
		{"PATCH /arvados/v1/collections/{id}", apiauth.ScopeWrite, h.update},
		{"DELETE /arvados/v1/collections/{id}", apiauth.ScopeWrite, h.trash},
		{"POST /arvados/v1/collections/{id}/trash", apiauth.ScopeWrite, h.trash},
		{"POST /arvados/v1/collections/{id}/untrash", apiauth.ScopeWrite, h.untrash},
	}
	for _, rt := range routes {
		h.mux.HandleFunc(rt.pattern, h.authorized(rt))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "%s %s: no such API call in this registry", r.Method, r.URL.Path)
	})
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	h.mux.ServeHTTP(w, r)
}

// authorized runs rt.serve if the request's token has rt.scope.
func (h *handler) authorized(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if rt.scope == apiauth.ScopeNone {
			rt.serve(w, r, Token{})
			return
		}
		secret := requestToken(r)
		if secret == "" {
			writeError(w, http.StatusUnauthorized, "no token: send Authorization: Bearer TOKEN")
			return
		}
		who, err := h.cfg.Store.Lookup(r.Context(), secret)
		switch {
		case errors.Is(err, ErrNoToken):
			writeError(w, http.StatusUnauthorized, "unknown or revoked token")
			return
		case err != nil:
			h.cfg.Log.Error("token lookup failed", "err", err)
			writeError(w, http.StatusInternalServerError, "the registry could not check the token: %v", err)
			return
		case !who.Scope.Allows(rt.scope):
			writeError(w, http.StatusForbidden, "token %s has scope %s; %s %s needs %s", who.Name, who.Scope, r.Method, r.URL.Path, rt.scope)
			return
		}
		rt.serve(w, r, who)
	}
}

// requestToken returns the token of the Authorization header, or of the
// api_token parameter as Arvados clients may send it.
func requestToken(r *http.Request) string {
	if tok, err := protocol.BearerToken(r.Header); err == nil {
		return tok
	}
	return r.URL.Query().Get("api_token")
}

// apiError is an Arvados API error answer.
type apiError struct {
	Errors []string `json:"errors"`
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, apiError{Errors: []string{fmt.Sprintf(format, args...)}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fail answers err with the status its kind calls for.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var qe *QueryError
	var ie *InputError
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, ErrNameTaken), errors.As(err, &qe), errors.As(err, &ie):
		writeError(w, http.StatusUnprocessableEntity, "%v", err)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "request body larger than %d bytes", mbe.Limit)
	default:
		h.cfg.Log.Error("request failed", "method", r.Method, "path", protocol.RedactPath(r.URL.Path), "err", err)
		writeError(w, http.StatusInternalServerError, "%v", err)
	}
}

func (h *handler) discovery(w http.ResponseWriter, r *http.Request, _ Token) {
	writeJSON(w, http.StatusOK, map[string]any{
		"kind":                         "discovery#restDescription",
		"discoveryVersion":             "v1",
		"id":                           "arvados:v1",
		"name":                         "arvados",
		"version":                      "v1",
		"title":                        "keep collection registry",
		"rootUrl":                      "https://" + r.Host + "/",
		"servicePath":                  "arvados/v1/",
		"basePath":                     "/arvados/v1/",
		"uuidPrefix":                   h.cfg.ClusterID,
		"blobSignatureTtl":             int64(h.cfg.Signer.TTL / time.Second),
		"defaultCollectionReplication": h.cfg.DefaultReplication,
		"defaultTrashLifetime":         int64(h.cfg.TrashLifetime / time.Second),
		"maxRequestSize":               MaxRequestBytes,
		"resources":                    map[string]any{},
	})
}

// config answers the part of an Arvados cluster's exported
// configuration that clients read.
func (h *handler) config(w http.ResponseWriter, r *http.Request, _ Token) {
	writeJSON(w, http.StatusOK, map[string]any{
		"ClusterID": h.cfg.ClusterID,
		"Collections": map[string]any{
			"BlobSigning":          len(h.cfg.Signer.Key) > 0,
			"BlobSigningTTL":       h.cfg.Signer.TTL.String(),
			"DefaultReplication":   h.cfg.DefaultReplication,
			"DefaultTrashLifetime": h.cfg.TrashLifetime.String(),
		},
	})
}

// userUUID is the uuid shown for the user a token stands for.
func (h *handler) userUUID(t Token) string {
	sum := sha256.Sum256([]byte(t.Name))
	return h.cfg.ClusterID + "-tpzed-" + hex.EncodeToString(sum[:])[:15]
}

func (h *handler) currentUser(w http.ResponseWriter, r *http.Request, who Token) {
	writeJSON(w, http.StatusOK, map[string]any{
		"kind":             "arvados#user",
		"uuid":             h.userUUID(who),
		"username":         who.Name,
		"full_name":        who.Name,
		"first_name":       who.Name,
		"last_name":        "",
		"email":            "",
		"is_active":        true,
		"is_admin":         who.Scope == apiauth.ScopeAdmin,
		apiauth.ScopeField: who.Scope.String(),
	})
}

func (h *handler) services(w http.ResponseWriter, r *http.Request, _ Token) {
	if h.cfg.ServicesFile == "" {
		writeJSON(w, http.StatusOK, map[string]any{"kind": "arvados#keepServiceList", "items": []any{}, "items_available": 0})
		return
	}
	f, err := os.Open(h.cfg.ServicesFile)
	if err != nil {
		h.fail(w, r, fmt.Errorf("reading the services list: %w", err))
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxServicesBytes+1))
	if err == nil && len(data) > maxServicesBytes {
		err = fmt.Errorf("larger than %d bytes", maxServicesBytes)
	}
	if err == nil {
		_, err = keepclient.ParseServices(data)
	}
	if err != nil {
		h.fail(w, r, fmt.Errorf("the services list %s: %w", h.cfg.ServicesFile, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

// expiry is when signatures made now run out.
func (h *handler) expiry(now time.Time) time.Time { return now.Add(h.cfg.Signer.TTL) }

func (h *handler) list(w http.ResponseWriter, r *http.Request, who Token) {
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.cfg.Now()
	cols, total, err := h.cfg.Store.List(r.Context(), q, now)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	items := make([]map[string]any, 0, len(cols))
	token := secret(r)
	for i := range cols {
		items = append(items, h.render(&cols[i], token, now, q.Select))
	}
	out := map[string]any{
		"kind": "arvados#collectionList", "etag": "", "self_link": "",
		"offset": q.Offset, "limit": q.Limit, "items": items,
	}
	if q.Count {
		out["items_available"] = total
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request, who Token) {
	id := r.PathValue("id")
	now := h.cfg.Now()
	var c Collection
	var err error
	if protocol.IsPDH(id) {
		c, err = h.cfg.Store.GetByPDH(r.Context(), id, now)
	} else {
		c, err = h.cfg.Store.Get(r.Context(), id)
		if err == nil && c.IsTrashed(now) && r.URL.Query().Get("include_trash") != "true" {
			err = fmt.Errorf("%s is in the trash (include_trash=true shows it): %w", id, ErrNotFound)
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h.render(&c, secret(r), now, nil))
}

// secret is the part of a token signatures are made with: the whole
// token, or the last part of an Arvados v2 token.
func secret(r *http.Request) string {
	tok := requestToken(r)
	if strings.HasPrefix(tok, "v2/") {
		if i := strings.LastIndexByte(tok, '/'); i > 0 {
			return tok[i+1:]
		}
	}
	return tok
}
