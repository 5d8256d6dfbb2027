package s3volume

import "testing"

// A listing replaces a digit's counts only if no change of that digit
// was pending when it started or began while it ran, since such a change
// may or may not be in the listing.
func TestRecount(t *testing.T) {
	const a, b = "a0000000000000000000000000000000", "b0000000000000000000000000000000"
	tests := []struct {
		name   string
		before func(c *counts) // before the listing starts
		during func(c *counts) // while it runs
		prefix string
		want   [2]int64 // blocks of digits a and b after
	}{
		{name: "quiet", prefix: "", want: [2]int64{5, 5}},
		{name: "one digit", prefix: "a", want: [2]int64{5, 1}},
		{name: "longer prefix", prefix: "a0", want: [2]int64{1, 1}},
		{name: "change during", prefix: "",
			during: func(c *counts) { c.begin(a); c.end(a, 10, 1) },
			want:   [2]int64{2, 5}},
		{name: "change pending at the start", prefix: "",
			before: func(c *counts) { c.begin(b) },
			during: func(c *counts) { c.end(b, 10, 1) },
			want:   [2]int64{5, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c counts
			c.digits[10].blocks, c.digits[11].blocks = 1, 1
			if tt.before != nil {
				tt.before(&c)
			}
			r := c.recount(tt.prefix)
			for range 5 {
				r.add(a, 1)
				r.add(b, 1)
			}
			if tt.during != nil {
				tt.during(&c)
			}
			r.settle()
			if got := [2]int64{c.digits[10].blocks, c.digits[11].blocks}; got != tt.want {
				t.Errorf("blocks of digits a, b = %v, want %v", got, tt.want)
			}
		})
	}
}
