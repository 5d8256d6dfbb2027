package keepweb

import (
	"net/http"
	"strings"
)

// tokenCookie is the cookie keep-web keeps a token in.
const tokenCookie = "arvados_api_token"

// requestToken returns the token r brings: "Authorization: Bearer T"
// (or "OAuth2 T"), or Basic authentication with T as the password (the
// user name is ignored: for WebDAV clients and file managers that know
// no other way, as keep-web takes it), else the token cookie, else
// anonymous.
func requestToken(r *http.Request, anonymous string) string {
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, tok, _ := strings.Cut(auth, " ")
		if tok = strings.TrimSpace(tok); tok != "" && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "OAuth2")) {
			return tok
		}
		if _, pass, ok := r.BasicAuth(); ok && pass != "" {
			return pass
		}
	}
	if c, err := r.Cookie(tokenCookie); err == nil && c.Value != "" {
		return c.Value
	}
	return anonymous
}

// redirectToken answers a request whose query has api_token=T, as
// keep-web does: T goes into the token cookie and the browser is sent to
// the same URL without it, so that the token stays out of the address
// bar, the history and Referer headers. It reports whether it answered.
func redirectToken(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	tok := q.Get("api_token")
	if !q.Has("api_token") {
		return false
	}
	q.Del("api_token")
	if tok == "" {
		http.Error(w, "empty api_token", http.StatusBadRequest)
		return true
	}
	http.SetCookie(w, &http.Cookie{
		Name:     tokenCookie,
		Value:    tok,
		Path:     "/",
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
	target := r.URL.EscapedPath()
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
	return true
}
