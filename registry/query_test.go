package registry

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		params string // URL query
		want   Query
		err    string // part of the error, "" for none
	}{
		{"", Query{Limit: DefaultLimit, Count: true}, ""},
		{"limit=5&offset=10&count=none", Query{Limit: 5, Offset: 10}, ""},
		{"limit=100000", Query{Limit: MaxLimit, Count: true}, ""},
		{"limit=-1", Query{}, `"limit" must be a whole number`},
		{"count=maybe", Query{}, `"count" must be`},
		{"include_trash=true", Query{Limit: DefaultLimit, Count: true, IncludeTrash: true}, ""},
		{"include_trash=yes", Query{}, `"include_trash" must be true or false`},
		{`filters=[["uuid",">","a"]]`, Query{Limit: DefaultLimit, Count: true, Filters: []Filter{{"uuid", ">", "a"}}}, ""},
		{`filters=[["collections.name","LIKE","a%"]]`, Query{Limit: DefaultLimit, Count: true, Filters: []Filter{{"name", "like", "a%"}}}, ""},
		{`filters=[["replication_desired","=",null]]`, Query{Limit: DefaultLimit, Count: true, Filters: []Filter{{"replication_desired", "=", nil}}}, ""},
		{`filters=[["replication_desired","<",null]]`, Query{}, "null is not allowed"},
		{`filters=[["replication_desired","=",1.5]]`, Query{}, "whole number"},
		{`filters=[["replication_desired","like","1"]]`, Query{}, "text attributes only"},
		{`filters=[["name","=",3]]`, Query{}, "want a string"},
		{`filters=[["name","=",null]]`, Query{}, "null is not allowed"},
		{`filters=[["modified_at",">=","yesterday"]]`, Query{}, "RFC 3339"},
		{`filters=[["is_trashed","<",true]]`, Query{}, "use = or !="},
		{`filters=[["manifest_text","=","x"]]`, Query{}, `cannot filter on "manifest_text"`},
		{`filters=[["owner","=","x"]]`, Query{}, `cannot filter on "owner"`},
		{`filters=[["name","~","x"]]`, Query{}, `unknown operator "~"`},
		{`filters=[["name","in","x"]]`, Query{}, "takes a list"},
		{`filters=[["name","="]]`, Query{}, "want [attribute, operator, operand]"},
		{`filters={"name":"x"}`, Query{}, `"filters" must be a JSON list`},
		{`order=["name desc","uuid"]`, Query{Limit: DefaultLimit, Count: true, Order: []Order{{"name", true}, {"uuid", false}}}, ""},
		{`order=modified_at asc, collections.uuid`, Query{Limit: DefaultLimit, Count: true, Order: []Order{{"modified_at", false}, {"uuid", false}}}, ""},
		{`order=["name sideways"]`, Query{}, "want asc or desc"},
		{`order=["manifest_text"]`, Query{}, "cannot order by"},
		{`select=["uuid","manifest_text"]`, Query{Limit: DefaultLimit, Count: true, Select: []string{"uuid", "manifest_text"}}, ""},
		{`select=["secret"]`, Query{}, `cannot select unknown attribute "secret"`},
		{`where={"name":"x"}`, Query{}, `"where" is not supported`},
	}
	for _, tt := range tests {
		v := url.Values{}
		for _, kv := range strings.Split(tt.params, "&") {
			if k, val, ok := strings.Cut(kv, "="); ok {
				v.Add(k, val)
			}
		}
		got, err := ParseQuery(v)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one saying %q", tt.params, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.params, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %+v, want %+v", tt.params, got, tt.want)
		}
	}
}

func TestFilterSQL(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		f    Filter
		sql  string
		args []any
	}{
		{Filter{"name", "=", "a"}, "name = ?", []any{"a"}},
		{Filter{"name", "!=", "a"}, "(name <> ? OR name IS NULL)", []any{"a"}},
		{Filter{"replication_desired", "=", nil}, "replication_desired IS NULL", nil},
		{Filter{"replication_desired", "!=", nil}, "replication_desired IS NOT NULL", nil},
		{Filter{"replication_desired", ">", 2.0}, "replication_desired > ?", []any{int64(2)}},
		{Filter{"name", "in", []any{}}, "1 = 0", nil},
		{Filter{"name", "not in", []any{}}, "1 = 1", nil},
		{Filter{"replication_desired", "in", []any{nil, 3.0}}, "(replication_desired IN (?) OR replication_desired IS NULL)", []any{int64(3)}},
		{Filter{"replication_desired", "not in", []any{3.0}}, "(replication_desired NOT IN (?) OR replication_desired IS NULL)", []any{int64(3)}},
		{Filter{"is_trashed", "=", true}, "(trash_at IS NOT NULL AND trash_at <= ?)", []any{now.UnixMicro()}},
		{Filter{"is_trashed", "!=", true}, "(trash_at IS NULL OR trash_at > ?)", []any{now.UnixMicro()}},
		{Filter{"modified_at", "<", "1970-01-01T00:16:40Z"}, "modified_at < ?", []any{now.UnixMicro()}},
		{Filter{"name", "ilike", "A%"}, `LOWER(name) LIKE LOWER(?) ESCAPE '\'`, []any{"A%"}},
	}
	for _, tt := range tests {
		if err := tt.f.check(); err != nil {
			t.Errorf("%v: %v", tt.f, err)
			continue
		}
		sql, args := tt.f.sql(now)
		if sql != tt.sql || !reflect.DeepEqual(args, tt.args) {
			t.Errorf("%v: %s %v, want %s %v", tt.f, sql, args, tt.sql, tt.args)
		}
	}
}
