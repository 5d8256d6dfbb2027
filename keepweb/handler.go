// Package keepweb serves collections read-only over HTTP and WebDAV, in
// the URL and token conventions of Arvados keep-web, for browsers, curl,
// rclone and file managers.
//
// A Handler answers requests for /c=ID/PATH, where ID is a collection's
// portable data hash (or, with a Collections source, its uuid or name)
// or the locator of a manifest stored as a block ('keep put
// --store-manifest'). A file is served with Range, HEAD, an ETag made
// from its block locators and a Content-Type from its extension; a
// directory as a plain HTML page, or with ?download=zip as a zip archive
// streamed as it is read; PROPFIND answers WebDAV clients. Nothing can be
// written: PUT, DELETE, MKCOL and the other WebDAV writes get 405.
//
// Blocks are read with the caller's token, so with signing on the block
// servers decide what each caller may read; every block is verified
// against its hash before any of its bytes are sent. Files are streamed
// block by block (a few blocks ahead, Options.BlocksAhead), never held
// whole.
package keepweb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/keepproject/keep/keepclient"
)

// DefaultBlocksAhead is the number of blocks a download fetches ahead of
// the one it is sending when Options.BlocksAhead is 0.
const DefaultBlocksAhead = 3

// Options configure a Handler. They are fixed once New returns.
type Options struct {
	// Client reads the blocks; each request uses it with the caller's
	// token (keepclient.Client.WithToken). Required.
	Client *keepclient.Client
	// Collections, if set, resolves collection uuids, names and portable
	// data hashes to manifest text signed for the caller. Without it only
	// manifests stored as blocks can be served.
	Collections Collections
	// AnonymousToken is used for requests that bring no token. Empty:
	// such requests get 401.
	AnonymousToken string
	// BlocksAhead is the number of blocks a download fetches ahead of the
	// one it is sending. Each download holds at most BlocksAhead+1 blocks
	// (64 MiB each at most) in memory. 0 means DefaultBlocksAhead;
	// negative means none ahead.
	BlocksAhead int
	// MaxDownloads bounds the file and zip downloads sent at once, and
	// so the memory they hold: MaxDownloads × (BlocksAhead+1) blocks. A
	// download over the limit gets 503 with Retry-After. Directory
	// pages, HEAD and WebDAV listings read no blocks and are not
	// counted. 0 means no limit.
	MaxDownloads int
	// Logger receives one line per failed download. Default: discard.
	Logger *slog.Logger
}

// Collections finds collections by id for a caller.
type Collections interface {
	// Manifest returns the manifest text of the collection id (a uuid,
	// portable data hash or name), with its locators signed for token.
	// An unknown collection is an error wrapping ErrNotFound.
	Manifest(ctx context.Context, token, id string) (string, error)
}

// ErrNotFound is wrapped by errors for collections that do not exist.
var ErrNotFound = errors.New("no such collection")

// Handler serves collections; see the package documentation. It is safe
// for concurrent use.
type Handler struct {
	opts  Options
	ahead int
	log   *slog.Logger
	slots chan struct{} // one per download in progress; nil: no limit
}

// New returns a Handler configured by opts.
func New(opts Options) (*Handler, error) {
	if opts.Client == nil {
		return nil, errors.New("keepweb.New: no Client")
	}
	h := &Handler{opts: opts, ahead: opts.BlocksAhead, log: opts.Logger}
	switch {
	case h.ahead == 0:
		h.ahead = DefaultBlocksAhead
	case h.ahead < 0:
		h.ahead = 0
	}
	if opts.MaxDownloads < 0 {
		return nil, errors.New("keepweb.New: negative MaxDownloads")
	}
	if opts.MaxDownloads > 0 {
		h.slots = make(chan struct{}, opts.MaxDownloads)
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return h, nil
}

// allowed are the methods answered; every other one (PUT, DELETE,
// MKCOL, MOVE, LOCK and the rest) gets 405.
const allowed = "GET, HEAD, OPTIONS, PROPFIND"

// ServeHTTP answers one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	req, err := parseRequest(r)
	if err != nil {
		httpError(w, err)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if redirectToken(w, r) {
			return
		}
	case "PROPFIND":
	case http.MethodOptions:
		w.Header().Set("Allow", allowed)
		w.Header().Set("DAV", "1")
		return
	default:
		w.Header().Set("Allow", allowed)
		http.Error(w, "this server is read-only", http.StatusMethodNotAllowed)
		return
	}
	if req.id == "" {
		h.serveRoot(w, r)
		return
	}
	token := requestToken(r, h.opts.AnonymousToken)
	if token == "" {
		// Basic lets file managers ask for the token (as the password).
		w.Header().Add("WWW-Authenticate", `Bearer realm="keep web"`)
		w.Header().Add("WWW-Authenticate", `Basic realm="keep web (password: your token)", charset="UTF-8"`)
		http.Error(w, "no token: send Authorization: Bearer TOKEN, or ?api_token=TOKEN", http.StatusUnauthorized)
		return
	}
	c, err := h.load(r.Context(), token, req.id)
	if err != nil {
		httpError(w, err)
		return
	}
	h.serveCollection(w, r, req, c)
}

// serveCollection answers a request for req in the collection c.
func (h *Handler) serveCollection(w http.ResponseWriter, r *http.Request, req request, c *collection) {
	if r.Method == "PROPFIND" {
		h.serveDAV(w, r, req, c)
		return
	}
	if f, ok := c.tree.files[req.path]; ok && !req.slash {
		h.serveFile(w, r, c, f)
		return
	}
	if _, ok := c.tree.dirs[req.path]; !ok {
		http.Error(w, "no such file or directory in the collection", http.StatusNotFound)
		return
	}
	if !req.slash {
		// Relative links on the page need the slash.
		target := r.URL.EscapedPath() + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
		return
	}
	if r.URL.Query().Get("download") == "zip" {
		h.serveZip(w, r, c, req.path)
		return
	}
	h.serveDir(w, r, c, req.path)
}

// acquire takes a download slot, or answers 503 and returns false.
// release gives it back.
func (h *Handler) acquire(w http.ResponseWriter) bool {
	if h.slots == nil {
		return true
	}
	select {
	case h.slots <- struct{}{}:
		return true
	default:
		w.Header().Set("Retry-After", "5")
		http.Error(w, fmt.Sprintf("%d downloads are in progress, the most this server sends at once; try again shortly", cap(h.slots)), http.StatusServiceUnavailable)
		return false
	}
}

func (h *Handler) release() {
	if h.slots != nil {
		<-h.slots
	}
}

// serveRoot answers "/": what this server is and how to use it.
func (h *Handler) serveRoot(w http.ResponseWriter, r *http.Request) {
	if r.Method == "PROPFIND" {
		http.Error(w, "browse a collection: /c=ID/", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "keep web: collections are at /c=PORTABLE_DATA_HASH/ (or a collection's uuid or name, or a stored manifest's locator).")
}

// statusError is an error with the HTTP status it is answered with.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// errorf returns a statusError for code with a formatted message.
func errorf(code int, format string, args ...any) error {
	return &statusError{code: code, err: fmt.Errorf(format, args...)}
}

// httpError answers err with its status (502 when it has none).
func httpError(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	var se *statusError
	if errors.As(err, &se) {
		code = se.code
	}
	http.Error(w, strings.TrimSpace(err.Error()), code)
}
