package keepclient

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestProbeOrderVectorA(t *testing.T) {
	var svcs []Service
	for j := 0; j < 16; j++ {
		svcs = append(svcs, Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015x", j)})
	}
	want := []string{"3eab2d5fc9681074", "097dba52e648f1c3", "c5b4e023f8a7d691", "9d81c02e76a3bf54"}
	for i, w := range want {
		sum := md5.Sum([]byte(fmt.Sprintf("%064x", i)))
		var fixed strings.Builder
		for _, s := range ProbeOrder(hex.EncodeToString(sum[:]), svcs) {
			fixed.WriteByte(s.UUID[len(s.UUID)-1])
		}
		if fixed.String() != w {
			t.Errorf("block %d: order %s, want %s", i, fixed.String(), w)
		}
	}
}

// One Prober gives vector A's orders whatever it ordered before, and
// appends to dst without allocating.
func TestProber(t *testing.T) {
	var svcs []Service
	for j := 0; j < 16; j++ {
		svcs = append(svcs, Service{UUID: fmt.Sprintf("zzzzz-bi6l4-%015x", j)})
	}
	want := []string{"3eab2d5fc9681074", "097dba52e648f1c3", "c5b4e023f8a7d691", "9d81c02e76a3bf54"}
	p := NewProber(svcs)
	dst := make([]int, 0, len(svcs))
	for round := range 2 {
		for i := len(want) - 1; i >= 0; i-- {
			sum := md5.Sum([]byte(fmt.Sprintf("%064x", i)))
			dst = p.Order(dst[:0], []byte(hex.EncodeToString(sum[:])))
			var got strings.Builder
			for _, k := range dst {
				got.WriteString(strconv.FormatInt(int64(k), 16))
			}
			if got.String() != want[i] {
				t.Errorf("round %d, block %d: %s, want %s", round, i, got.String(), want[i])
			}
		}
	}
	hash := []byte("acbd18db4cc2f85cedef654fccc4a4d8")
	if n := testing.AllocsPerRun(100, func() { dst = p.Order(dst[:0], hash) }); n != 0 {
		t.Errorf("Order allocates %v times", n)
	}
}

func TestProbeOrderVectorB(t *testing.T) {
	svcs := []Service{{UUID: "zzzzz-bi6l4-000000000000000"}, {UUID: "zzzzz-bi6l4-000000000000001"}, {UUID: "zzzzz-bi6l4-000000000000002"}}
	got := ProbeOrder("acbd18db4cc2f85cedef654fccc4a4d8", svcs)
	var order []string
	for _, s := range got {
		order = append(order, s.UUID[len(s.UUID)-1:])
	}
	if strings.Join(order, ",") != "0,2,1" {
		t.Errorf("order %v, want 0,2,1", order)
	}
	if svcs[1].UUID != "zzzzz-bi6l4-000000000000001" {
		t.Error("ProbeOrder modified its input")
	}
}

func TestParseServices(t *testing.T) {
	doc := `{"kind":"arvados#keepServiceList","items":[
	 {"uuid":"zzzzz-bi6l4-000000000000000","service_host":"10.0.0.1","service_port":25107,"service_ssl_flag":false,"service_type":"disk","read_only":false},
	 {"uuid":"zzzzz-bi6l4-000000000000001","service_host":"::1","service_port":443,"service_ssl_flag":true,"service_type":"proxy","read_only":true}],"items_available":2}`
	svcs, err := ParseServices([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0].URL() != "http://10.0.0.1:25107" || !svcs[0].IsDisk() ||
		svcs[1].URL() != "https://[::1]:443" || svcs[1].IsDisk() || !svcs[1].ReadOnly {
		t.Errorf("got %+v", svcs)
	}
	for _, bad := range []string{`{`, `{"items":[{"uuid":"x","service_port":1}]}`, `{"items":[{"service_host":"h","service_port":70000}]}`,
		`{"items":[{"service_host":"user@evil.example","service_port":1}]}`, `{"items":[{"service_host":"evil.example/x?","service_port":1}]}`,
		`{"items":[{"service_host":"a b","service_port":1}]}`} {
		if _, err := ParseServices([]byte(bad)); err == nil {
			t.Errorf("ParseServices(%s) succeeded", bad)
		}
	}
	out, err := MarshalServices(svcs)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseServices(out)
	if err != nil || len(back) != 2 || back[1] != svcs[1] {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

// FuzzParseServices: whatever a services document says, every service
// ParseServices accepts names exactly one host and port: its URL parses
// back to them, with no user info, path, query or fragment (a service
// list from an API server is untrusted input too).
func FuzzParseServices(f *testing.F) {
	f.Add(`{"items":[{"uuid":"zzzzz-bi6l4-000000000000000","service_host":"keep0","service_port":25107,"service_ssl_flag":false,"service_type":"disk"}]}`)
	f.Add(`{"items":[{"service_host":"evil/path?x#y","service_port":80}]}`)
	f.Add(`{"items":[{"service_host":"user@host","service_port":1}]}`)
	f.Add(`{"items":[{"service_host":"::1","service_port":443,"service_ssl_flag":true}]}`)
	f.Add(`{"items":null}`)
	f.Fuzz(func(t *testing.T, doc string) {
		svcs, err := ParseServices([]byte(doc))
		if err != nil {
			return
		}
		for _, s := range svcs {
			u, err := url.Parse(s.URL())
			if err != nil {
				t.Fatalf("service %+v: URL %q does not parse: %v", s, s.URL(), err)
			}
			if u.Hostname() != s.Host || u.Port() != strconv.Itoa(s.Port) || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
				t.Fatalf("service %+v: URL %q names host %q port %q path %q", s, s.URL(), u.Hostname(), u.Port(), u.Path)
			}
		}
	})
}
