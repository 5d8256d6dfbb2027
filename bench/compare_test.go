package bench

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestCompare: the comparison holds the runs both reports measured,
// in the other report's order, each with the other's rate over the
// base's; a run the base lacks, or measured at no rate, is left out.
func TestCompare(t *testing.T) {
	m := func(name string, mbps float64) Measurement { return Measurement{Name: name, MBps: mbps} }
	tests := []struct {
		name        string
		base, other Report
		want        []RateRatio
	}{
		{"same runs",
			Report{Put: []Measurement{m("put N=1", 100), m("put N=2", 50)}, Get: []Measurement{m("get N=1", 200)}},
			Report{Put: []Measurement{m("put N=1", 150), m("put N=2", 25)}, Get: []Measurement{m("get N=1", 200)}},
			[]RateRatio{{"put N=1", 100, 150, 1.5}, {"put N=2", 50, 25, 0.5}, {"get N=1", 200, 200, 1}}},
		{"other's order, runs in both only",
			Report{Put: []Measurement{m("b", 10), m("a", 20)}},
			Report{Put: []Measurement{m("a", 10), m("c", 1)}, Get: []Measurement{m("b", 30)}},
			[]RateRatio{{"a", 20, 10, 0.5}, {"b", 10, 30, 3}}},
		{"no base rate", Report{Put: []Measurement{m("a", 0)}}, Report{Put: []Measurement{m("a", 10)}}, nil},
		{"nothing", Report{}, Report{}, nil},
	}
	for _, tt := range tests {
		c := Compare("base", &tt.base, "other", &tt.other)
		if c.BaseName != "base" || c.OtherName != "other" || c.Base != &tt.base || c.Other != &tt.other {
			t.Errorf("%s: names or reports not kept: %+v", tt.name, c)
		}
		if !reflect.DeepEqual(c.Rates, tt.want) {
			t.Errorf("%s: rates %v, want %v", tt.name, c.Rates, tt.want)
		}
	}
}

// TestComparisonOutput: the table keep bench prints, and the JSON it
// writes with --json, which holds both reports whole.
func TestComparisonOutput(t *testing.T) {
	base := &Report{Cores: 2, Put: []Measurement{{Name: "put N=1, 4 servers", MBps: 100}}}
	other := &Report{Cores: 3, Put: []Measurement{{Name: "put N=1, 4 servers", MBps: 250}}}
	c := Compare("sync", base, "no-sync", other)
	var table bytes.Buffer
	if err := c.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	want := "\nno-sync over sync, measured in this run:\n\n" +
		"  run                             sync MB/s no-sync MB/s no-sync/sync\n" +
		"  put N=1, 4 servers                    100          250         2.50\n"
	if table.String() != want {
		t.Errorf("table:\n%q\nwant\n%q", table.String(), want)
	}

	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"base_name", "other_name", "base", "other", "rates"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, data)
		}
	}
	if !strings.Contains(string(data), `"ratio":2.5`) || !strings.Contains(string(data), `"cores":3`) {
		t.Errorf("JSON lacks the ratio or the other report: %s", data)
	}
}
