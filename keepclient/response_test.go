package keepclient

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keepproject/keep/internal/protocol"
)

func TestParseUpload(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const hash = testHash
	good := hash + "+3+Aabc@5f000000\n"
	q := asked{hash: hash, size: 3, maxRetryAfter: time.Minute}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name      string
		a         answer
		replicas  int
		classes   string // fmt of the map; "map[]" for nil
		volumes   string // fmt of the map; "" for not checked, "map[]" for nil
		locator   string
		retry     time.Duration
		retryable bool
		msg       string // substring of the message
		warn      string // substring of a warning; "" for none
	}{
		{name: "plain 200", a: answer{status: 200, body: []byte(good)}, replicas: 1, classes: "map[]", locator: strings.TrimSpace(good)},
		{name: "replicas 2", a: answer{status: 200, header: hdr("X-Keep-Replicas-Stored", "2"), body: []byte(good)}, replicas: 2, classes: "map[]", locator: strings.TrimSpace(good)},
		// What an answer is worth to the write is the plan's to decide.
		{name: "replicas 5", a: answer{status: 200, header: hdr("X-Keep-Replicas-Stored", "5"), body: []byte(good)}, replicas: 5, classes: "map[]", locator: strings.TrimSpace(good)},
		{name: "replicas overflow", a: answer{status: 200, header: hdr("X-Keep-Replicas-Stored", "9223372036854775807"), body: []byte(good)}, replicas: 1, classes: "map[]", locator: strings.TrimSpace(good), warn: "malformed"},
		{name: "replicas negative", a: answer{status: 200, header: hdr("X-Keep-Replicas-Stored", "-1"), body: []byte(good)}, replicas: 1, classes: "map[]", locator: strings.TrimSpace(good), warn: "malformed"},
		{name: "replicas zero", a: answer{status: 200, header: hdr("X-Keep-Replicas-Stored", "0"), body: []byte(good)}, replicas: 0, classes: "map[]", locator: strings.TrimSpace(good)},
		{name: "classes", a: answer{status: 200, header: hdr("X-Keep-Storage-Classes-Confirmed", "hot=1, cold=1"), body: []byte(good)}, replicas: 1, classes: "map[cold:1 hot:1]", locator: strings.TrimSpace(good)},
		{name: "classes in two headers", a: answer{status: 200, header: hdr("X-Keep-Storage-Classes-Confirmed", "hot=1", "X-Keep-Storage-Classes-Confirmed", "cold=1"), body: []byte(good)}, replicas: 1, classes: "map[cold:1 hot:1]", locator: strings.TrimSpace(good)},
		{name: "classes 7", a: answer{status: 200, header: hdr("X-Keep-Storage-Classes-Confirmed", "hot=7"), body: []byte(good)}, replicas: 1, classes: "map[hot:7]", locator: strings.TrimSpace(good)},
		{name: "classes overflow", a: answer{status: 200, header: hdr("X-Keep-Storage-Classes-Confirmed", "default=1, default=9223372036854775807"), body: []byte(good)}, replicas: 1, classes: "map[]", locator: strings.TrimSpace(good), warn: "not tracking classes"},
		{name: "classes empty", a: answer{status: 200, header: hdr("X-Keep-Storage-Classes-Confirmed", ""), body: []byte(good)}, replicas: 1, classes: "map[]", locator: strings.TrimSpace(good), warn: "not tracking classes"},
		{name: "no volumes", a: answer{status: 200, body: []byte(good)}, replicas: 1, volumes: "map[]", locator: strings.TrimSpace(good)},
		{name: "volumes", a: answer{status: 200, header: hdr("X-Keep-Replicas-Stored", "3", "X-Keep-Volumes-Stored", "v1=1, v2=2"), body: []byte(good)}, replicas: 3, volumes: "map[v1:1 v2:2]", locator: strings.TrimSpace(good)},
		{name: "volumes in two headers", a: answer{status: 200, header: hdr("X-Keep-Volumes-Stored", "v1=1", "X-Keep-Volumes-Stored", "v2=1"), body: []byte(good)}, replicas: 1, volumes: "map[v1:1 v2:1]", locator: strings.TrimSpace(good)},
		{name: "volume named twice", a: answer{status: 200, header: hdr("X-Keep-Volumes-Stored", "v1=1, v1=1"), body: []byte(good)}, replicas: 1, volumes: "map[v1:1]", locator: strings.TrimSpace(good)},
		{name: "volumes malformed", a: answer{status: 200, header: hdr("X-Keep-Volumes-Stored", "v1"), body: []byte(good)}, replicas: 1, volumes: "map[]", locator: strings.TrimSpace(good), warn: "as if it named no volumes"},
		{name: "volumes empty", a: answer{status: 200, header: hdr("X-Keep-Volumes-Stored", ""), body: []byte(good)}, replicas: 1, volumes: "map[]", locator: strings.TrimSpace(good), warn: "as if it named no volumes"},
		{name: "volume count overflow", a: answer{status: 200, header: hdr("X-Keep-Volumes-Stored", "v1=1, v2=9223372036854775807"), body: []byte(good)}, replicas: 1, volumes: "map[]", locator: strings.TrimSpace(good), warn: "as if it named no volumes"},
		{name: "locator of another block", a: answer{status: 200, body: []byte("37b51d194a7513e45b56f6524f2d51f2+3\n")}, replicas: 1, classes: "map[]", warn: "names another block"},
		{name: "locator of another size", a: answer{status: 200, body: []byte(hash + "+4\n")}, replicas: 1, classes: "map[]", warn: "names another block"},
		{name: "garbage body", a: answer{status: 200, body: []byte("<html>")}, replicas: 1, classes: "map[]", warn: "unusable locator"},
		{name: "oversize body", a: answer{status: 200, body: []byte(good), truncated: true}, replicas: 1, classes: "map[]", warn: "longer than 4096 bytes"},
		{name: "500", a: answer{status: 500, body: []byte("disk on fire\nmore")}, retryable: true, msg: "disk on fire"},
		{name: "503 full", a: answer{status: 503, body: []byte("full")}, msg: "full"},
		{name: "503 busy", a: answer{status: 503, header: hdr("Retry-After", "2")}, retry: 2 * time.Second, retryable: true},
		{name: "503 busy for an hour", a: answer{status: 503, header: hdr("Retry-After", "3600")}, msg: "longer than the 1m0s this client waits"},
		{name: "503 busy until a date", a: answer{status: 503, header: hdr("Retry-After", now.Add(3*time.Second).Format(http.TimeFormat))}, retry: 3 * time.Second, retryable: true},
		{name: "503 bad Retry-After", a: answer{status: 503, header: hdr("Retry-After", "soon")}},
		{name: "507", a: answer{status: 507, body: []byte("insufficient storage")}, msg: "insufficient"},
		{name: "429", a: answer{status: 429}, retryable: true},
		{name: "408", a: answer{status: 408}, retryable: true},
		{name: "401", a: answer{status: 401, body: []byte("no token")}, msg: "no token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.a.header == nil {
				tt.a.header = http.Header{}
			}
			o, warnings := parseUpload(tt.a, q, now)
			if o.status != tt.a.status || o.replicas != tt.replicas || o.locator != tt.locator || o.retryAfter != tt.retry {
				t.Errorf("status %d replicas %d locator %q retry %v; want %d %d %q %v", o.status, o.replicas, o.locator, o.retryAfter, tt.a.status, tt.replicas, tt.locator, tt.retry)
			}
			if tt.classes != "" && fmt.Sprint(o.classes) != tt.classes {
				t.Errorf("classes %v, want %s", o.classes, tt.classes)
			}
			if tt.volumes != "" && fmt.Sprint(o.volumes) != tt.volumes {
				t.Errorf("volumes %v, want %s", o.volumes, tt.volumes)
			}
			if !o.ok() && o.retryable() != tt.retryable {
				t.Errorf("retryable %v, want %v", o.retryable(), tt.retryable)
			}
			if !strings.Contains(o.msg, tt.msg) {
				t.Errorf("message %q, want it to contain %q", o.msg, tt.msg)
			}
			joined := strings.Join(warnings, "; ")
			if (tt.warn == "") != (len(warnings) == 0) || !strings.Contains(joined, tt.warn) {
				t.Errorf("warnings %q, want %q", joined, tt.warn)
			}
		})
	}
}

// FuzzParseUpload: whatever a server answers, its counts are in range,
// and in a write that has counted a replica on a volume already, it
// counts for between 0 and what is still missing, in total and per
// class, so that the write never counts more than it wants.
func FuzzParseUpload(f *testing.F) {
	f.Add(200, "1", "default=1", "v2=1", testHash+"+3\n", "")
	f.Add(200, "9223372036854775807", "default=1, default=9223372036854775807", "v1=1, v1=65536", "x", "")
	f.Add(200, "65536", "default=65536", "v2=65536, v3=65536", "x", "")
	f.Add(503, "", "", "", "busy", "5")
	f.Fuzz(func(t *testing.T, status int, replicas, classes, volumes, body, retryAfter string) {
		h := http.Header{}
		h.Set("X-Keep-Replicas-Stored", replicas)
		h.Set("X-Keep-Storage-Classes-Confirmed", classes)
		h.Set("X-Keep-Volumes-Stored", volumes)
		h.Set("Retry-After", retryAfter)
		q := asked{hash: testHash, size: 3, maxRetryAfter: time.Minute}
		o, _ := parseUpload(answer{status: status, header: h, body: []byte(body)}, q, time.Unix(0, 0))
		if o.replicas < 0 || o.replicas > protocol.MaxReplicas || o.worth() < 0 || o.worth() > o.replicas {
			t.Fatalf("replicas %d, worth %d", o.replicas, o.worth())
		}
		for c, n := range o.classes {
			if n < 0 || n > protocol.MaxReplicas {
				t.Fatalf("class %q counted %d", c, n)
			}
		}
		if len(o.volumes) > protocol.MaxVolumes {
			t.Fatalf("%d volumes", len(o.volumes))
		}
		if o.retryAfter < 0 || o.retryAfter > q.maxRetryAfter {
			t.Fatalf("retry after %v", o.retryAfter)
		}
		if o.locator != "" && !strings.HasPrefix(o.locator, testHash+"+3") {
			t.Fatalf("locator %q accepted", o.locator)
		}

		const wanted = 3
		p := plan(disks(3), wanted, "default")
		first, _, _ := p.next()
		p.record(first, outcome{status: 200, replicas: 1, classes: map[string]int{"default": 1}, volumes: map[string]int{"v1": 1}})
		i, _, _ := p.next()
		before := p.stored
		n := p.record(i, o)
		if n < 0 || n > wanted-before || p.stored != before+n || (!o.ok() && n != 0) {
			t.Fatalf("counted %d with %d of %d stored before; now %d", n, before, wanted, p.stored)
		}
		for c, k := range p.confirmed {
			if k < 0 || k > wanted {
				t.Fatalf("class %q confirmed %d of %d", c, k, wanted)
			}
		}
	})
}
