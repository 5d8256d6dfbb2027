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

// TestClientFlagsNoHedge checks that the flags of put, get, proxy and
// bench no longer offer hedged writes: the client replaces a lagging
// upload instead, which stores no extra copy and needs no switch.
func TestClientFlagsNoHedge(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	fs.VisitAll(func(f *flag.Flag) {
		if strings.Contains(f.Name+f.Usage, "hedg") {
			t.Errorf("flag --%s: %s", f.Name, f.Usage)
		}
	})
	fs.SetOutput(io.Discard)
	if err := fs.Parse([]string{"--hedge=false"}); err == nil {
		t.Error("--hedge=false accepted")
	}
}
