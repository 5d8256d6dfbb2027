package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Paging limits, as an Arvados API server's defaults.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Query is a parsed list request: which collections, in what order, and
// which page of them.
type Query struct {
	Filters      []Filter
	Order        []Order
	Limit        int
	Offset       int
	IncludeTrash bool
	// Count asks for the number of collections selected, whatever the
	// page ("count": "exact", the default; "none" turns it off).
	Count bool
	// Select names the attributes to return; nil for all.
	Select []string
}

// Filter is one Arvados filter: [attribute, operator, operand].
type Filter struct {
	Attr, Op string
	Value    any // string, float64, bool, nil, or []any for in / not in
}

// Order is one sort key.
type Order struct {
	Attr string
	Desc bool
}

// QueryError is a list request the registry cannot answer, with why.
type QueryError struct{ Msg string }

func (e *QueryError) Error() string { return e.Msg }

func queryErr(format string, args ...any) error {
	return &QueryError{Msg: fmt.Sprintf(format, args...)}
}

// attrKind is how an attribute is stored and compared.
type attrKind int

const (
	kindString  attrKind = iota
	kindInt              // nullable integer
	kindTime             // microseconds, nullable
	kindTrashed          // is_trashed, worked out from trash_at
	kindOutput           // returned, not filtered or sorted on
)

// attrs are the collection attributes a query may name.
var attrs = map[string]attrKind{
	"uuid":                    kindString,
	"name":                    kindString,
	"description":             kindString,
	"portable_data_hash":      kindString,
	"replication_desired":     kindInt,
	"created_at":              kindTime,
	"modified_at":             kindTime,
	"trash_at":                kindTime,
	"delete_at":               kindTime,
	"is_trashed":              kindTrashed,
	"manifest_text":           kindOutput,
	"properties":              kindOutput,
	"storage_classes_desired": kindOutput,
	"owner_uuid":              kindOutput,
	"modified_by_user_uuid":   kindOutput,
	"kind":                    kindOutput,
	"etag":                    kindOutput,
	"version":                 kindOutput,
	"current_version_uuid":    kindOutput,
	"replication_confirmed":   kindOutput,
	"file_count":              kindOutput,
	"file_size_total":         kindOutput,
}

// ParseQuery reads a list request's parameters: filters, order, limit,
// offset, count, select and include_trash, as the Arvados API takes
// them (JSON in each parameter).
func ParseQuery(v url.Values) (Query, error) {
	q := Query{Limit: DefaultLimit, Count: true}
	if s := v.Get("where"); s != "" && s != "{}" {
		return q, queryErr(`"where" is not supported: use "filters"`)
	}
	if s := v.Get("filters"); s != "" {
		f, err := parseFilters(s)
		if err != nil {
			return q, err
		}
		q.Filters = f
	}
	if s := v.Get("order"); s != "" {
		o, err := parseOrder(s)
		if err != nil {
			return q, err
		}
		q.Order = o
	}
	var err error
	if q.Limit, err = intParam(v, "limit", DefaultLimit, MaxLimit); err != nil {
		return q, err
	}
	if q.Offset, err = intParam(v, "offset", 0, 1<<40); err != nil {
		return q, err
	}
	switch c := v.Get("count"); c {
	case "", "exact":
	case "none":
		q.Count = false
	default:
		return q, queryErr(`"count" must be "exact" or "none", not %q`, c)
	}
	if q.IncludeTrash, err = boolParam(v, "include_trash"); err != nil {
		return q, err
	}
	if _, err = boolParam(v, "include_old_versions"); err != nil {
		return q, err
	}
	if s := v.Get("select"); s != "" {
		if err := json.Unmarshal([]byte(s), &q.Select); err != nil {
			return q, queryErr(`"select" must be a JSON list of attribute names: %v`, err)
		}
		for _, a := range q.Select {
			if _, ok := attrs[a]; !ok {
				return q, queryErr("cannot select unknown attribute %q", a)
			}
		}
	}
	return q, nil
}

func intParam(v url.Values, name string, def, max int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, queryErr("%q must be a whole number, not %q", name, s)
	}
	return min(n, max), nil
}

func boolParam(v url.Values, name string) (bool, error) {
	switch s := v.Get(name); s {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, queryErr("%q must be true or false, not %q", name, s)
	}
}

// parseFilters reads [[attr, op, operand], ...].
func parseFilters(s string) ([]Filter, error) {
	var raw [][]any
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	if err := d.Decode(&raw); err != nil {
		return nil, queryErr(`"filters" must be a JSON list of [attribute, operator, operand]: %v`, err)
	}
	var out []Filter
	for _, r := range raw {
		if len(r) != 3 {
			return nil, queryErr("filter %v: want [attribute, operator, operand]", r)
		}
		attr, ok1 := r[0].(string)
		op, ok2 := r[1].(string)
		if !ok1 || !ok2 {
			return nil, queryErr("filter %v: the attribute and operator must be strings", r)
		}
		f := Filter{Attr: strings.TrimPrefix(attr, "collections."), Op: strings.ToLower(op), Value: r[2]}
		if err := f.check(); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// check refuses a filter on an unknown attribute, with an operator the
// attribute does not take, or with an operand of the wrong type.
func (f Filter) check() error {
	kind, ok := attrs[f.Attr]
	if !ok || kind == kindOutput {
		return queryErr("cannot filter on %q", f.Attr)
	}
	switch f.Op {
	case "=", "!=", "<", "<=", ">", ">=", "in", "not in":
	case "like", "ilike":
		if kind != kindString {
			return queryErr("filter on %s: %q works on text attributes only", f.Attr, f.Op)
		}
	default:
		return queryErr("filter on %s: unknown operator %q", f.Attr, f.Op)
	}
	if kind == kindTrashed && f.Op != "=" && f.Op != "!=" {
		return queryErr("filter on is_trashed: use = or !=")
	}
	var vals []any
	if f.Op == "in" || f.Op == "not in" {
		l, ok := f.Value.([]any)
		if !ok {
			return queryErr("filter on %s: %q takes a list", f.Attr, f.Op)
		}
		vals = l
	} else {
		vals = []any{f.Value}
	}
	for _, v := range vals {
		nullOK := f.Op == "=" || f.Op == "!=" || f.Op == "in" || f.Op == "not in"
		if _, err := operand(kind, v, nullOK); err != nil {
			return queryErr("filter on %s: %v", f.Attr, err)
		}
	}
	return nil
}

// operand converts a filter operand to what the column holds; nil (SQL
// NULL) is allowed only where nullOK.
func operand(kind attrKind, v any, nullOK bool) (any, error) {
	if v == nil {
		if !nullOK || kind == kindString || kind == kindTrashed {
			return nil, fmt.Errorf("null is not allowed here")
		}
		return nil, nil
	}
	switch kind {
	case kindString:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("want a string, not %v", v)
	case kindInt:
		if n, ok := v.(float64); ok && n == float64(int64(n)) {
			return int64(n), nil
		}
		return nil, fmt.Errorf("want a whole number, not %v", v)
	case kindTime:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a time (RFC 3339), not %v", v)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("want a time (RFC 3339), not %q", s)
		}
		return t.UnixMicro(), nil
	case kindTrashed:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("want true or false, not %v", v)
	}
	return nil, fmt.Errorf("not filterable")
}

// parseOrder reads ["attr asc", ...], or one such string, or several
// separated by commas.
func parseOrder(s string) ([]Order, error) {
	var list []string
	if strings.HasPrefix(strings.TrimSpace(s), "[") {
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return nil, queryErr(`"order" must be a JSON list of "attribute asc|desc": %v`, err)
		}
	} else {
		list = strings.Split(s, ",")
	}
	var out []Order
	for _, item := range list {
		fields := strings.Fields(item)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, queryErr("order %q: want \"attribute\" or \"attribute asc|desc\"", item)
		}
		o := Order{Attr: strings.TrimPrefix(fields[0], "collections.")}
		if k, ok := attrs[o.Attr]; !ok || k == kindOutput || k == kindTrashed {
			return nil, queryErr("cannot order by %q", fields[0])
		}
		if len(fields) == 2 {
			switch strings.ToLower(fields[1]) {
			case "asc":
			case "desc":
				o.Desc = true
			default:
				return nil, queryErr("order %q: want asc or desc", item)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// where returns the WHERE clause (with ? placeholders) and its
// arguments.
func (q Query) where(now time.Time) (string, []any, error) {
	var conds []string
	var args []any
	if !q.IncludeTrash {
		conds = append(conds, "(trash_at IS NULL OR trash_at > ?)")
		args = append(args, now.UnixMicro())
	}
	for _, f := range q.Filters {
		if err := f.check(); err != nil {
			return "", nil, err
		}
		c, a := f.sql(now)
		conds = append(conds, c)
		args = append(args, a...)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// sql returns f as a condition; f has passed check.
func (f Filter) sql(now time.Time) (string, []any) {
	kind := attrs[f.Attr]
	col := f.Attr
	if kind == kindTrashed {
		want, _ := f.Value.(bool)
		if f.Op == "!=" {
			want = !want
		}
		if want {
			return "(trash_at IS NOT NULL AND trash_at <= ?)", []any{now.UnixMicro()}
		}
		return "(trash_at IS NULL OR trash_at > ?)", []any{now.UnixMicro()}
	}
	switch f.Op {
	case "in", "not in":
		vals := f.Value.([]any)
		if len(vals) == 0 {
			if f.Op == "in" {
				return "1 = 0", nil
			}
			return "1 = 1", nil
		}
		var args []any
		hasNull := false
		for _, v := range vals {
			a, _ := operand(kind, v, false)
			if v == nil {
				hasNull = true
				continue
			}
			args = append(args, a)
		}
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
		if f.Op == "in" {
			switch {
			case len(args) == 0:
				return col + " IS NULL", nil
			case hasNull:
				return "(" + col + " IN (" + ph + ") OR " + col + " IS NULL)", args
			}
			return col + " IN (" + ph + ")", args
		}
		switch {
		case len(args) == 0:
			return col + " IS NOT NULL", nil
		case hasNull:
			return "(" + col + " NOT IN (" + ph + ") AND " + col + " IS NOT NULL)", args
		}
		return "(" + col + " NOT IN (" + ph + ") OR " + col + " IS NULL)", args
	case "like":
		return col + ` LIKE ? ESCAPE '\'`, []any{f.Value}
	case "ilike":
		return "LOWER(" + col + `) LIKE LOWER(?) ESCAPE '\'`, []any{f.Value}
	}
	v, _ := operand(kind, f.Value, true)
	if v == nil {
		if f.Op == "=" {
			return col + " IS NULL", nil
		}
		return col + " IS NOT NULL", nil
	}
	if f.Op == "!=" {
		// As in SQL and Arvados, != never matches null... except that
		// users expect "not this value" to include unset ones.
		return "(" + col + " <> ? OR " + col + " IS NULL)", []any{v}
	}
	return col + " " + f.Op + " ?", []any{v}
}

// orderBy returns the ORDER BY clause: the requested keys, then uuid so
// that pages never overlap or skip.
func (q Query) orderBy() string {
	var keys []string
	hasUUID := false
	for _, o := range q.Order {
		k := o.Attr
		if o.Desc {
			k += " DESC NULLS LAST"
		} else {
			k += " ASC NULLS FIRST"
		}
		keys = append(keys, k)
		hasUUID = hasUUID || o.Attr == "uuid"
	}
	if len(keys) == 0 {
		keys = append(keys, "modified_at DESC NULLS LAST")
	}
	if !hasUUID {
		keys = append(keys, "uuid ASC")
	}
	return " ORDER BY " + strings.Join(keys, ", ")
}
