package keepclient

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Errors from saltToken: tokens that must not be sent to another cluster.
var (
	errTokenFormat = errors.New("not an Arvados v2 token (v2/UUID/SECRET)")
	errSalted      = errors.New("already salted for another cluster")
)

// saltToken returns the token to send to cluster, as Arvados federation
// does: a v2 token issued by that cluster as it is; any other v2 token
// with its secret replaced by hex(HMAC-SHA1(secret, cluster)), so that the
// remote cluster can check it with this cluster's API server without
// ever seeing the secret. Other tokens are refused: sending them would
// hand another cluster a credential for this one.
func saltToken(token, cluster string) (string, error) {
	parts := strings.Split(token, "/")
	if len(parts) != 3 || parts[0] != "v2" || parts[1] == "" || parts[2] == "" {
		return "", errTokenFormat
	}
	uuid, secret := parts[1], parts[2]
	if strings.HasPrefix(uuid, cluster) {
		return token, nil
	}
	if len(secret) == 40 {
		// A salted secret is 40 hex digits; Arvados issues longer ones.
		return "", errSalted
	}
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(cluster))
	return "v2/" + uuid + "/" + hex.EncodeToString(m.Sum(nil)), nil
}

// remoteFor returns the cluster whose configured service is s, if any.
func (c *Client) remoteFor(s Service) (string, bool) {
	for id, r := range c.opts.RemoteClusters {
		if r.URL() == s.URL() {
			return id, true
		}
	}
	return "", false
}

// tokenFor returns the token to send to s: the client's own, or, for a
// remote cluster's service, the token salted for that cluster.
func (c *Client) tokenFor(s Service) (string, error) {
	id, remote := c.remoteFor(s)
	if !remote || c.opts.Token == "" {
		return c.opts.Token, nil
	}
	tok, err := saltToken(c.opts.Token, id)
	if err != nil {
		return "", fmt.Errorf("not reading from remote cluster %s: token %w", id, err)
	}
	return tok, nil
}
