package main

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args []string
		pos  string
		o    string
	}{
		{[]string{"m.txt", "-o", "dir"}, "m.txt", "dir"},
		{[]string{"-o", "dir", "m.txt"}, "m.txt", "dir"},
		{[]string{"a", "--o=x", "b"}, "a,b", "x"},
		{[]string{"a", "--", "-o", "b"}, "a,-o,b", ""},
		{[]string{"-", "b"}, "-,b", ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o := fs.String("o", "", "")
		pos, err := parse(fs, tt.args)
		if err != nil || strings.Join(pos, ",") != tt.pos || *o != tt.o {
			t.Errorf("parse(%q) = %q, o=%q, %v", tt.args, pos, *o, err)
		}
	}
}
