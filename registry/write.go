package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
	"github.com/keepproject/keep/manifest"
)

// InputError is a create or update the registry refuses, with why.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErr(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// CheckName refuses collection names that tools could not tell from a
// uuid, a portable data hash or a path: those, names holding "/" or
// control characters, and names over 255 bytes.
func CheckName(name string) error {
	switch {
	case len(name) > 255:
		return inputErr("collection name of %d bytes (at most 255)", len(name))
	case strings.ContainsRune(name, '/'):
		return inputErr("collection name %q holds a /", name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return inputErr("collection name %q holds a control character", name)
	case protocol.IsUUID(name), protocol.IsPDH(name):
		return inputErr("collection name %q looks like a uuid or portable data hash", name)
	case name != strings.TrimSpace(name):
		return inputErr("collection name %q starts or ends with a space", name)
	}
	return nil
}

// input is the attributes a create or update sets; a nil field is left
// alone. Replication and the times distinguish "null" from absent.
type input struct {
	Name                  *string          `json:"name"`
	Description           *string          `json:"description"`
	Properties            *json.RawMessage `json:"properties"`
	ManifestText          *string          `json:"manifest_text"`
	PortableDataHash      *string          `json:"portable_data_hash"`
	ReplicationDesired    optional[int]    `json:"replication_desired"`
	StorageClassesDesired *[]string        `json:"storage_classes_desired"`
	TrashAt               optional[string] `json:"trash_at"`
	DeleteAt              optional[string] `json:"delete_at"`
	// Accepted and ignored, as clients send them: there are no owners
	// or versions here.
	OwnerUUID       *string `json:"owner_uuid"`
	PreserveVersion *bool   `json:"preserve_version"`
}

// optional is a JSON value that may be absent, null or set.
type optional[T any] struct {
	Set   bool
	Value *T // nil for null
}

func (o *optional[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		return nil
	}
	o.Value = new(T)
	return json.Unmarshal(b, o.Value)
}

// readInput reads {"collection": {...}} from a JSON body, or the
// collection parameter of a form or query (a JSON object in a string),
// and the ensure_unique_name flag, as Arvados clients send them.
func readInput(r *http.Request) (input, bool, error) {
	var in input
	var raw json.RawMessage
	unique := false
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var body struct {
			Collection       json.RawMessage `json:"collection"`
			EnsureUniqueName bool            `json:"ensure_unique_name"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return in, false, err
			}
			return in, false, inputErr("the body is not a JSON object: %v", err)
		}
		raw, unique = body.Collection, body.EnsureUniqueName
	} else {
		if err := r.ParseForm(); err != nil {
			return in, false, inputErr("reading the form: %v", err)
		}
		if s := r.Form.Get("collection"); s != "" {
			raw = json.RawMessage(s)
		}
		unique = r.Form.Get("ensure_unique_name") == "true"
	}
	if len(raw) == 0 {
		return in, false, inputErr(`no "collection" attributes given`)
	}
	// The attributes may come as an object, or as a string holding one.
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.DisallowUnknownFields()
	if err := d.Decode(&in); err != nil {
		return in, false, inputErr("collection attributes: %v", err)
	}
	return in, unique, nil
}

// apply sets in's attributes on c. token is the writer's, to check the
// manifest's signatures against.
func (h *handler) apply(c *Collection, in input, token string, now time.Time) error {
	if in.Name != nil {
		if err := CheckName(*in.Name); err != nil {
			return err
		}
		c.Name = *in.Name
	}
	if in.Description != nil {
		c.Description = *in.Description
	}
	if in.Properties != nil {
		var obj map[string]any
		if err := json.Unmarshal(*in.Properties, &obj); err != nil || obj == nil {
			return inputErr("properties must be a JSON object")
		}
		c.Properties = string(*in.Properties)
	}
	if in.ManifestText != nil {
		text, pdh, err := h.storedManifest(*in.ManifestText, token, now)
		if err != nil {
			return err
		}
		c.ManifestText, c.PortableDataHash = text, pdh
	}
	if in.PortableDataHash != nil && *in.PortableDataHash != c.PortableDataHash {
		return inputErr("portable_data_hash %s does not match the manifest's, %s", *in.PortableDataHash, c.PortableDataHash)
	}
	if in.ReplicationDesired.Set {
		if v := in.ReplicationDesired.Value; v != nil && (*v < 1 || *v > MaxReplication) {
			return inputErr("replication_desired %d: want 1 to %d, or null for the default (%d)", *v, MaxReplication, h.cfg.DefaultReplication)
		}
		c.ReplicationDesired = in.ReplicationDesired.Value
	}
	if in.StorageClassesDesired != nil {
		classes := *in.StorageClassesDesired
		if len(classes) == 0 {
			return inputErr("storage_classes_desired is empty")
		}
		for _, cl := range classes {
			if cl == "" || strings.ContainsAny(cl, ", \t\n") {
				return inputErr("storage class %q: want a name without commas or spaces", cl)
			}
		}
		c.StorageClassesDesired = classes
	}
	if in.TrashAt.Set {
		t, err := parseTime("trash_at", in.TrashAt.Value)
		if err != nil {
			return err
		}
		c.TrashAt = t
		if t != nil && !in.DeleteAt.Set && (c.DeleteAt == nil || c.DeleteAt.Before(*t)) {
			d := t.Add(h.cfg.TrashLifetime)
			c.DeleteAt = &d
		}
		if t == nil && !in.DeleteAt.Set {
			c.DeleteAt = nil
		}
	}
	if in.DeleteAt.Set {
		t, err := parseTime("delete_at", in.DeleteAt.Value)
		if err != nil {
			return err
		}
		c.DeleteAt = t
	}
	switch {
	case c.DeleteAt != nil && c.TrashAt == nil:
		return inputErr("delete_at is set but trash_at is not")
	case c.DeleteAt != nil && c.DeleteAt.Before(*c.TrashAt):
		return inputErr("delete_at (%s) is before trash_at (%s)", formatTime(*c.DeleteAt), formatTime(*c.TrashAt))
	}
	c.ModifiedAt = now
	return nil
}

func parseTime(attr string, s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return nil, inputErr("%s %q: want a time in RFC 3339 form, or null", attr, *s)
	}
	t = t.UTC().Truncate(time.Microsecond)
	return &t, nil
}

// storedManifest checks a written manifest (its syntax, and a valid
// signature for token on every block, when signing is on) and returns
// it as stored, without signatures, and its portable data hash.
func (h *handler) storedManifest(text, token string, now time.Time) (string, string, error) {
	m, err := manifest.Parse(text)
	if err != nil {
		return "", "", inputErr("manifest_text: %v", err)
	}
	if len(h.cfg.Signer.Key) > 0 {
		for _, l := range m.Blocks() {
			if l.IsEmptyBlock() {
				continue
			}
			if err := h.cfg.Signer.Verify(l, token, now); err != nil {
				return "", "", inputErr("manifest_text: block %s: %v (a writer must present the signature the block server gave it, or one from reading a collection, for its own token and unexpired)", l.Bare(), err)
			}
		}
	}
	bare := m.MapBlocks(locator.Locator.Unsigned)
	return bare.Text(), m.PortableDataHash(), nil
}

// newUUID returns a fresh collection uuid.
func (h *handler) newUUID() string {
	return h.cfg.ClusterID + "-4zz18-" + protocol.RandomBase36(15)
}

func (h *handler) create(w http.ResponseWriter, r *http.Request, who Token) {
	in, unique, err := readInput(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.cfg.Now().UTC().Truncate(time.Microsecond)
	c := Collection{
		UUID: h.newUUID(), Properties: "{}", StorageClassesDesired: []string{"default"},
		CreatedAt: now, ModifiedBy: who.Name,
	}
	empty := ""
	if in.ManifestText == nil {
		in.ManifestText = &empty
	}
	if err := h.apply(&c, in, secret(r), now); err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.cfg.Store.Create(r.Context(), c)
	if errors.Is(err, ErrNameTaken) && unique {
		c.Name = fmt.Sprintf("%s (%s)", c.Name, now.Format("2006-01-02 15:04:05.000000Z"))
		err = h.cfg.Store.Create(r.Context(), c)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h.render(&c, secret(r), now, nil))
}

func (h *handler) update(w http.ResponseWriter, r *http.Request, who Token) {
	in, _, err := readInput(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.change(w, r, who, func(c *Collection, now time.Time) error {
		return h.apply(c, in, secret(r), now)
	})
}

func (h *handler) trash(w http.ResponseWriter, r *http.Request, who Token) {
	h.change(w, r, who, func(c *Collection, now time.Time) error {
		if c.IsTrashed(now) {
			return nil
		}
		del := now.Add(h.cfg.TrashLifetime)
		c.TrashAt, c.DeleteAt, c.ModifiedAt = &now, &del, now
		return nil
	})
}

func (h *handler) untrash(w http.ResponseWriter, r *http.Request, who Token) {
	h.change(w, r, who, func(c *Collection, now time.Time) error {
		if !c.IsTrashed(now) {
			return inputErr("collection %s is not in the trash", c.UUID)
		}
		c.TrashAt, c.DeleteAt, c.ModifiedAt = nil, nil, now
		return nil
	})
}

// change applies f to the collection the path names, in one transaction.
func (h *handler) change(w http.ResponseWriter, r *http.Request, who Token, f func(*Collection, time.Time) error) {
	now := h.cfg.Now().UTC().Truncate(time.Microsecond)
	c, err := h.cfg.Store.Update(r.Context(), r.PathValue("id"), func(c *Collection) error {
		if err := f(c, now); err != nil {
			return err
		}
		c.ModifiedBy = who.Name
		return nil
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h.render(&c, secret(r), now, nil))
}

// timeLayout is how the Arvados API writes times.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func formatOptTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return formatTime(*t)
}

// render returns c as the API shows it, its manifest signed for token
// (the request's secret); with sel, only the attributes sel names.
func (h *handler) render(c *Collection, token string, now time.Time, sel []string) map[string]any {
	want := func(attr string) bool { return sel == nil || slices.Contains(sel, attr) }
	out := map[string]any{}
	if want("manifest_text") || want("file_count") || want("file_size_total") {
		text, files, size := h.signedManifest(c, token, now)
		if want("manifest_text") {
			out["manifest_text"] = text
		}
		if want("file_count") {
			out["file_count"] = files
		}
		if want("file_size_total") {
			out["file_size_total"] = size
		}
	}
	var repl any
	if c.ReplicationDesired != nil {
		repl = *c.ReplicationDesired
	}
	all := map[string]any{
		"kind":                    "arvados#collection",
		"uuid":                    c.UUID,
		"etag":                    fmt.Sprintf("%x", c.ModifiedAt.UnixMicro()),
		"owner_uuid":              h.cfg.ClusterID + "-tpzed-000000000000000",
		"created_at":              formatTime(c.CreatedAt),
		"modified_at":             formatTime(c.ModifiedAt),
		"modified_by_user_uuid":   h.userUUID(Token{Name: c.ModifiedBy}),
		"name":                    c.Name,
		"description":             c.Description,
		"properties":              json.RawMessage(c.Properties),
		"portable_data_hash":      c.PortableDataHash,
		"replication_desired":     repl,
		"replication_confirmed":   nil,
		"storage_classes_desired": c.StorageClassesDesired,
		"trash_at":                formatOptTime(c.TrashAt),
		"delete_at":               formatOptTime(c.DeleteAt),
		"is_trashed":              c.IsTrashed(now),
		"version":                 1,
		"current_version_uuid":    c.UUID,
	}
	for k, v := range all {
		if want(k) {
			out[k] = v
		}
	}
	return out
}

// signedManifest returns c's manifest signed for token until now plus
// the signing TTL, and its file count and total size.
func (h *handler) signedManifest(c *Collection, token string, now time.Time) (string, int, int64) {
	m, err := manifest.Parse(c.ManifestText)
	if err != nil {
		// Stored manifests were checked when written; one that no longer
		// parses is shown as it is rather than hidden.
		return c.ManifestText, 0, 0
	}
	var size int64
	for _, f := range m.Files {
		size += f.Size()
	}
	if len(h.cfg.Signer.Key) == 0 || token == "" {
		return c.ManifestText, len(m.Files), size
	}
	exp := h.expiry(now)
	signed := m.MapBlocks(func(l locator.Locator) locator.Locator {
		if l.IsEmptyBlock() {
			return l
		}
		return h.cfg.Signer.Sign(l, token, exp)
	})
	return signed.Text(), len(m.Files), size
}
