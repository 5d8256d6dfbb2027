package protocol

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseClasses(t *testing.T) {
	tests := []struct {
		in      []string
		want    string
		wantErr bool
	}{
		{nil, "[]", false},
		{[]string{""}, "[]", false},
		{[]string{" , testclass2 , "}, "[testclass2]", false},
		{[]string{"hot, cold", "hot,warm"}, "[hot cold warm]", false},
		{[]string{"a,a,a,a,b"}, "[a b]", false},
		{[]string{strings.Repeat("x", MaxClassLen+1)}, "", true},
		{[]string{strings.Repeat("c,", 10*MaxClasses)}, "[c]", false},
	}
	for _, tt := range tests {
		got, err := ParseClasses(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseClasses(%.40q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseClasses(%.40q) error %v does not wrap ErrMalformed", tt.in, err)
			}
			continue
		}
		if s := fmt.Sprint(got); s != tt.want {
			t.Errorf("ParseClasses(%.40q) = %v, want %v", tt.in, s, tt.want)
		}
	}
}

func manyClasses(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprint("c", i)
	}
	return strings.Join(parts, ",")
}

// A huge header costs linear time: 60,000 distinct names are refused
// after MaxClasses, and 60,000 repeats of one name are one class.
func TestParseClassesHugeHeader(t *testing.T) {
	if got, err := ParseClasses([]string{manyClasses(MaxClasses)}); err != nil || len(got) != MaxClasses {
		t.Errorf("%d classes: got %d, %v", MaxClasses, len(got), err)
	}
	if _, err := ParseClasses([]string{manyClasses(MaxClasses + 1)}); err == nil {
		t.Errorf("%d classes accepted", MaxClasses+1)
	}
	if _, err := ParseClasses([]string{manyClasses(60000)}); err == nil {
		t.Error("60,000 classes accepted")
	}
	got, err := ParseClasses([]string{strings.Repeat("same, ", 60000)})
	if err != nil || len(got) != 1 {
		t.Errorf("60,000 repeats: %v, %v", got, err)
	}
}

func TestParseConfirmed(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means an error
	}{
		{"foo=1", "map[foo:1]"},
		{" foo=1 , bar=2 ", "map[bar:2 foo:1]"},
		{"a=1, a=2", "map[a:3]"},
		{"", ""},
		{"  ", ""},
		{" =foo=1 ", ""},
		{"foo", ""},
		{"foo=x", ""},
		{"foo=-1", ""},
		{"foo=+1", ""},
		{"foo=9223372036854775807", ""},
		{"default=1, default=9223372036854775807", ""},
		{fmt.Sprintf("a=%d", MaxReplicas), fmt.Sprintf("map[a:%d]", MaxReplicas)},
		{fmt.Sprintf("a=%d, a=%d", MaxReplicas, MaxReplicas), fmt.Sprintf("map[a:%d]", MaxReplicas)},
		{"a b=1", ""},
		{"a=1,", ""},
	}
	for _, tt := range tests {
		m, err := ParseConfirmed(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseConfirmed(%q) = %v, want an error", tt.in, m)
			}
			continue
		}
		if err != nil || fmt.Sprint(m) != tt.want {
			t.Errorf("ParseConfirmed(%q) = %v, %v; want %s", tt.in, m, err, tt.want)
		}
	}
}

func TestParseVolumes(t *testing.T) {
	long := strings.Repeat("v", MaxVolumeIDLen)
	tests := []struct {
		in   string
		want string // "" means an error
	}{
		{"zzzzz-nyw5e-000000000000000=1", "map[zzzzz-nyw5e-000000000000000:1]"},
		{" b=2 , a=1 ", "map[a:1 b:2]"},
		{"a=1, a=2", "map[a:2]"}, // one volume, counted once
		{"a=2, a=1", "map[a:2]"},
		{"a=0", "map[a:0]"},
		{fmt.Sprintf("a=%d", MaxReplicas), fmt.Sprintf("map[a:%d]", MaxReplicas)},
		{long + "=1", fmt.Sprintf("map[%s:1]", long)},
		{long + "v=1", ""},
		{"", ""},
		{"  ", ""},
		{"a", ""},
		{"=1", ""},
		{"a=", ""},
		{"a=x", ""},
		{"a=-1", ""},
		{"a=+1", ""},
		{"a=1.5", ""},
		{fmt.Sprintf("a=%d", MaxReplicas+1), ""},
		{"a=9223372036854775807", ""},
		{"a=99999999999999999999999999", ""},
		{"a=1, a=9223372036854775807", ""},
		{"a b=1", ""},
		{"a=b=1", ""},
		{"a\x00=1", ""},
		{"caf\u00e9=1", ""},
		{"a=1,", ""},
		{manyVolumes(MaxVolumes), fmt.Sprint(MaxVolumes)},
		{manyVolumes(MaxVolumes + 1), ""},
		{manyVolumes(MaxVolumes) + ", v0=1", fmt.Sprint(MaxVolumes)}, // a repeat is not one more
	}
	for _, tt := range tests {
		m, err := ParseVolumes(tt.in)
		got := fmt.Sprint(m)
		if len(m) > 2 {
			got = fmt.Sprint(len(m))
		}
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseVolumes(%.60q) = %v, want an error", tt.in, got)
			} else if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), HeaderVolumesStored) {
				t.Errorf("ParseVolumes(%.60q): error %q does not name the header", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseVolumes(%.60q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// manyVolumes returns an X-Keep-Volumes-Stored value naming n volumes.
func manyVolumes(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("v%d=1", i)
	}
	return strings.Join(parts, ", ")
}

func TestFormatVolumes(t *testing.T) {
	m := map[string]int{"zzzzz-nyw5e-000000000000001": 2, "zzzzz-nyw5e-000000000000000": 1}
	got := FormatVolumes(m)
	if got != "zzzzz-nyw5e-000000000000000=1, zzzzz-nyw5e-000000000000001=2" {
		t.Errorf("FormatVolumes = %q", got)
	}
	if again, err := ParseVolumes(got); err != nil || fmt.Sprint(again) != fmt.Sprint(m) {
		t.Errorf("round trip: %v, %v", again, err)
	}
}

func TestFormatConfirmed(t *testing.T) {
	if got := FormatConfirmed(map[string]int{"b": 2, "a": 1}); got != "a=1, b=2" {
		t.Errorf("FormatConfirmed = %q", got)
	}
	if got := FormatConfirmed(nil); got != "" {
		t.Errorf("FormatConfirmed(nil) = %q", got)
	}
}

func TestParseReplicas(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1", 1, true},
		{" 3 ", 3, true},
		{"0", 0, true},
		{"65536", MaxReplicas, true},
		{"65537", 0, false},
		{"9223372036854775807", 0, false},
		{"99999999999999999999999999", 0, false},
		{"-1", 0, false},
		{"", 0, false},
		{"1.5", 0, false},
		{"0x10", 0, false},
	}
	for _, tt := range tests {
		n, err := ParseReplicas(tt.in)
		if (err == nil) != tt.ok || n != tt.want {
			t.Errorf("ParseReplicas(%q) = %d, %v; want %d, ok %v", tt.in, n, err, tt.want, tt.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"x", 0, false},
		{"-3", 0, false},
		{"0", time.Millisecond, true},
		{"2", 2 * time.Second, true},
		{"9223372036854775807", MaxRetryAfter, true},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Millisecond, true},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), MaxRetryAfter, true},
	}
	for _, tt := range tests {
		d, ok := ParseRetryAfter(tt.in, now)
		if d != tt.want || ok != tt.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, d, ok, tt.want, tt.ok)
		}
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		header string
		token  string
		err    error
	}{
		{"", "", ErrNoToken},
		{"Bearer abc", "abc", nil},
		{"bearer abc", "abc", nil},
		{"OAuth2 abc ", "abc", nil},
		{"Basic abc", "", ErrMalformedToken},
		{"Bearer", "", ErrMalformedToken},
		{"Bearer  ", "", ErrMalformedToken},
		{"Bearer a b", "", ErrMalformedToken},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.header != "" {
			h.Set("Authorization", tt.header)
		}
		tok, err := BearerToken(h)
		if tok != tt.token || err != tt.err {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, tok, err, tt.token, tt.err)
		}
	}
}

func TestRedactPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/acbd18db4cc2f85cedef654fccc4a4d8+3", "/acbd18db4cc2f85cedef654fccc4a4d8+3"},
		{"/acbd18db4cc2f85cedef654fccc4a4d8+3+Asecret@5f000000+K@zzzzz", "/acbd18db4cc2f85cedef654fccc4a4d8+3+K@zzzzz"},
		{"/x+Rzzzzz-secret+A1", "/x"},
		{"/index", "/index"},
		{"/" + strings.Repeat("a", 300), "/" + strings.Repeat("a", maxLoggedPath-1) + "..."},
		{"/a" + strings.Repeat("+b", 60000), "/a" + strings.Repeat("+b", (maxLoggedPath-2)/2) + "..."},
	}
	for _, tt := range tests {
		if got := RedactPath(tt.in); got != tt.want {
			t.Errorf("RedactPath(%.50q) = %.50q, want %.50q", tt.in, got, tt.want)
		}
	}
}

func TestNewRequestID(t *testing.T) {
	a, b := NewRequestID(), NewRequestID()
	if len(a) != 24 || !strings.HasPrefix(a, "req-") || a == b {
		t.Errorf("request ids %q, %q", a, b)
	}
	for _, r := range a[4:] {
		if !strings.ContainsRune("0123456789abcdefghijklmnopqrstuvwxyz", r) {
			t.Errorf("request id %q has %q", a, r)
		}
	}
}

func TestRequestID(t *testing.T) {
	for _, given := range []string{"req-123", "x", strings.Repeat("a", maxRequestIDLen), "zzzzz-a~b!c"} {
		if got := RequestID(given); got != given {
			t.Errorf("RequestID(%q) = %q, want it echoed", given, got)
		}
	}
	for _, given := range []string{"", "two words", "tab\there", "new\nline", "caf\u00e9", strings.Repeat("a", maxRequestIDLen+1)} {
		got := RequestID(given)
		if got == given || len(got) != 24 || !strings.HasPrefix(got, "req-") {
			t.Errorf("RequestID(%q) = %q, want a new id", given, got)
		}
	}
}

func FuzzParseClasses(f *testing.F) {
	f.Add("hot, cold, hot")
	f.Add(" , x ,")
	f.Add(manyClasses(70))
	f.Fuzz(func(t *testing.T, h string) {
		got, err := ParseClasses([]string{h})
		if err != nil {
			return
		}
		if len(got) > MaxClasses {
			t.Fatalf("%d classes", len(got))
		}
		seen := map[string]bool{}
		for _, c := range got {
			if c == "" || seen[c] || len(c) > MaxClassLen || strings.Contains(c, ",") || c != strings.TrimSpace(c) {
				t.Fatalf("bad class %q in %q", c, got)
			}
			seen[c] = true
		}
		again, err := ParseClasses([]string{FormatClasses(got)})
		if err != nil || fmt.Sprint(again) != fmt.Sprint(got) {
			t.Fatalf("round trip: %q -> %q, %v", got, again, err)
		}
	})
}

func FuzzParseConfirmed(f *testing.F) {
	f.Add("default=1")
	f.Add("a=1, b=2, a=3")
	f.Add("default=1, default=9223372036854775807")
	f.Fuzz(func(t *testing.T, h string) {
		m, err := ParseConfirmed(h)
		if err != nil {
			return
		}
		if len(m) == 0 || len(m) > MaxClasses {
			t.Fatalf("%d classes from %q", len(m), h)
		}
		for c, n := range m {
			if n < 0 || n > MaxReplicas || c == "" {
				t.Fatalf("class %q count %d from %q", c, n, h)
			}
		}
		again, err := ParseConfirmed(FormatConfirmed(m))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(m) {
			t.Fatalf("round trip: %v -> %v, %v", m, again, err)
		}
	})
}

func FuzzParseReplicas(f *testing.F) {
	f.Add("1")
	f.Add("9223372036854775807")
	f.Fuzz(func(t *testing.T, h string) {
		n, err := ParseReplicas(h)
		if err == nil && (n < 0 || n > MaxReplicas) {
			t.Fatalf("ParseReplicas(%q) = %d", h, n)
		}
	})
}

func FuzzParseVolumes(f *testing.F) {
	f.Add("zzzzz-nyw5e-000000000000000=1")
	f.Add("a=1, b=2, a=3")
	f.Add("a=1, a=9223372036854775807")
	f.Add(manyVolumes(MaxVolumes + 1))
	f.Fuzz(func(t *testing.T, h string) {
		m, err := ParseVolumes(h)
		if err != nil {
			return
		}
		if len(m) == 0 || len(m) > MaxVolumes {
			t.Fatalf("%d volumes from %q", len(m), h)
		}
		for id, n := range m {
			if n < 0 || n > MaxReplicas || !ValidVolumeID(id) {
				t.Fatalf("volume %q count %d from %q", id, n, h)
			}
		}
		again, err := ParseVolumes(FormatVolumes(m))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(m) {
			t.Fatalf("round trip: %v -> %v, %v", m, again, err)
		}
	})
}

// SortMounts orders mounts by md5(hash+uuid), smallest first, the order
// a server uses, whatever order they come in.
func TestSortMounts(t *testing.T) {
	hash := "acbd18db4cc2f85cedef654fccc4a4d8"
	uuids := []string{"zzzzz-nyw5e-000000000000000", "zzzzz-nyw5e-000000000000001", "zzzzz-nyw5e-000000000000002", "zzzzz-nyw5e-000000000000003"}
	weight := func(u string) string {
		sum := md5.Sum([]byte(hash + u))
		return hex.EncodeToString(sum[:])
	}
	want := slices.Clone(uuids)
	slices.SortFunc(want, func(a, b string) int { return strings.Compare(weight(a), weight(b)) })
	for _, in := range [][]string{uuids, want, {uuids[3], uuids[1], uuids[0], uuids[2]}} {
		got := slices.Clone(in)
		SortMounts(hash, got, func(u string) string { return u })
		if !slices.Equal(got, want) {
			t.Errorf("SortMounts(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestRandomBase36(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range []int{0, 1, 15, 50} {
		s := RandomBase36(n)
		if len(s) != n || strings.Trim(s, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("RandomBase36(%d) = %q", n, s)
		}
		if n >= 15 && seen[s] {
			t.Errorf("RandomBase36(%d) repeated %q", n, s)
		}
		seen[s] = true
	}
}
