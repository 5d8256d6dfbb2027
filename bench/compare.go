package bench

import (
	"fmt"
	"io"
	"strings"
)

// Comparison sets two reports of the same measurements, made with
// different servers (keep bench --compare-sync, --compare-s3), side by
// side: the put and get rates of Other over those of Base.
type Comparison struct {
	// BaseName and OtherName name the two setups ("no-sync", "dir").
	BaseName  string  `json:"base_name"`
	OtherName string  `json:"other_name"`
	Base      *Report `json:"base"`
	Other     *Report `json:"other"`
	// Rates holds, for each put and get of Other (in its order) that
	// Base measured at a positive rate too, the two rates.
	Rates []RateRatio `json:"rates"`
}

// RateRatio is one run's rate under both setups of a Comparison.
type RateRatio struct {
	Name      string  `json:"name"`
	BaseMBps  float64 `json:"base_mb_per_s"`
	OtherMBps float64 `json:"other_mb_per_s"`
	// Ratio is OtherMBps / BaseMBps.
	Ratio float64 `json:"ratio"`
}

// Compare returns the comparison of the report other, of the setup
// named otherName, with base, of the setup named baseName.
func Compare(baseName string, base *Report, otherName string, other *Report) *Comparison {
	c := &Comparison{BaseName: baseName, OtherName: otherName, Base: base, Other: other}
	rates := map[string]float64{}
	for _, m := range append(append([]Measurement(nil), base.Put...), base.Get...) {
		rates[m.Name] = m.MBps
	}
	for _, m := range append(append([]Measurement(nil), other.Put...), other.Get...) {
		if b, ok := rates[m.Name]; ok && b > 0 {
			c.Rates = append(c.Rates, RateRatio{Name: m.Name, BaseMBps: b, OtherMBps: m.MBps, Ratio: m.MBps / b})
		}
	}
	return c
}

// WriteTable prints the rates of c as aligned text, after a blank line.
func (c *Comparison) WriteTable(w io.Writer) error {
	a, b := c.BaseName, c.OtherName
	var s strings.Builder
	fmt.Fprintf(&s, "\n%s over %s, measured in this run:\n\n  %-28s %12s %12s %12s\n", b, a, "run", a+" MB/s", b+" MB/s", b+"/"+a)
	for _, r := range c.Rates {
		fmt.Fprintf(&s, "  %-28s %12.0f %12.0f %12.2f\n", r.Name, r.BaseMBps, r.OtherMBps, r.Ratio)
	}
	_, err := io.WriteString(w, s.String())
	return err
}
