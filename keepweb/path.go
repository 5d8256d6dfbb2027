package keepweb

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// request is what a request's path names.
type request struct {
	// id is the collection id after "/c=", "" for the root page.
	id string
	// path is the slash-separated path in the collection, "" for its
	// top directory; never with empty, "." or ".." parts.
	path string
	// slash reports a trailing slash (a directory was asked for).
	slash bool
	// prefix is the URL path of the collection's top, "/c=ID".
	prefix string
}

// parseRequest checks r's path and returns what it names. Paths that
// could mean something else to another program (a proxy, a file
// system, a browser) than to us are refused with 400: "." and ".."
// parts, empty parts, encoded slashes and backslashes, backslashes,
// NUL and other control characters, and invalid UTF-8. Paths outside
// /c=ID/ other than "/" are 404.
func parseRequest(r *http.Request) (request, error) {
	raw := strings.ToLower(r.URL.EscapedPath())
	for _, bad := range []string{"%2f", "%5c", "%00"} {
		if strings.Contains(raw, bad) {
			return request{}, errorf(http.StatusBadRequest, "the path holds an encoded slash, backslash or NUL")
		}
	}
	p := r.URL.Path
	if r.URL.Opaque != "" || !strings.HasPrefix(p, "/") {
		return request{}, errorf(http.StatusBadRequest, "the path does not start with a slash")
	}
	if err := checkChars(p); err != nil {
		return request{}, err
	}
	if p == "/" {
		return request{}, nil
	}
	rest, ok := strings.CutPrefix(p, "/c=")
	if !ok {
		return request{}, errorf(http.StatusNotFound, "not a collection: collections are at /c=ID/")
	}
	id, path, _ := strings.Cut(rest, "/")
	if id == "" {
		return request{}, errorf(http.StatusBadRequest, "no collection id after /c=")
	}
	req := request{id: id, prefix: "/c=" + id}
	req.path, req.slash = strings.CutSuffix(path, "/")
	if req.path != "" {
		for part := range strings.SplitSeq(req.path, "/") {
			if part == "" || part == "." || part == ".." {
				return request{}, errorf(http.StatusBadRequest, "the path has an empty, \".\" or \"..\" part")
			}
		}
	}
	if path == "" {
		// "/c=ID" is the collection's top directory, which wants a
		// slash like any other.
		req.slash = strings.HasSuffix(rest, "/")
	}
	return req, nil
}

// checkChars refuses paths with backslashes, control characters or
// invalid UTF-8.
func checkChars(p string) error {
	if !utf8.ValidString(p) {
		return errorf(http.StatusBadRequest, "the path is not valid UTF-8")
	}
	for _, c := range p {
		if c == '\\' || c < 0x20 || c == 0x7f {
			return errorf(http.StatusBadRequest, "the path holds a backslash or a control character")
		}
	}
	return nil
}
