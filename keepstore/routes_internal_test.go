package keepstore

import (
	"strings"
	"testing"
)

// TestRouteTable: which route serves each request, and what its pattern
// captures, in the order the table is matched.
func TestRouteTable(t *testing.T) {
	s := &Server{}
	routes := s.routeTable()
	tests := []struct {
		method, path string
		route        string // "" for none (400)
		captured     string
	}{
		{"OPTIONS", "*", "OPTIONS *", "*"},
		{"OPTIONS", "/index", "OPTIONS *", "/index"},
		{"GET", "/_health/ping", "GET|HEAD /_health/*", "ping"},
		{"HEAD", "/_health/", "GET|HEAD /_health/*", ""},
		{"PUT", "/_health/ping", "", ""},
		{"GET", "/metrics", "GET /metrics", ""},
		{"HEAD", "/metrics", "GET|HEAD /{block}", "metrics"},
		{"GET", "/_status", "GET /_status", ""},
		{"GET", "/index", "GET /index", ""},
		{"GET", "/index/", "GET /index/*", ""},
		{"GET", "/index/ab", "GET /index/*", "ab"},
		{"GET", "/index//ab", "GET /index/*", "/ab"},
		{"GET", "/indexab", "GET|HEAD /{block}", "indexab"},
		{"PUT", "/index", "PUT /{block}", "index"},
		{"GET", "/mounts", "GET /mounts", ""},
		{"GET", "/mounts/u/blocks", "GET /mounts/*", "u/blocks"},
		{"PUT", "/pull", "PUT /pull", ""},
		{"GET", "/pull", "GET /pull", ""},
		{"HEAD", "/pull", "GET|HEAD /{block}", "pull"},
		{"PUT", "/trash", "PUT /trash", ""},
		{"GET", "/trash", "GET /trash", ""},
		{"PUT", "/untrash/acbd", "PUT /untrash/*", "acbd"},
		{"GET", "/untrash/acbd", "", ""},
		{"TOUCH", "/acbd", "TOUCH /{block}", "acbd"},
		{"TOUCH", "//acbd", "", ""},
		{"DELETE", "/acbd", "DELETE /{block}", "acbd"},
		{"DELETE", "//acbd", "", ""},
		{"PUT", "/acbd+3", "PUT /{block}", "acbd+3"},
		{"PUT", "//acbd", "", ""},
		{"PUT", "/", "", ""},
		{"GET", "/acbd+3", "GET|HEAD /{block}", "acbd+3"},
		{"HEAD", "//acbd+3", "GET|HEAD //{block}", "acbd+3"},
		{"GET", "///acbd", "", ""},
		{"GET", "/a/b", "", ""},
		{"GET", "", "", ""},
		{"POST", "/acbd", "", ""},
		{"get", "/acbd", "", ""},
	}
	for _, tt := range tests {
		served, captured := "", ""
		for _, rt := range routes {
			if c, ok := rt.match(tt.method, tt.path); ok {
				served, captured = strings.Join(rt.methods, "|")+" "+rt.pattern, c
				break
			}
		}
		if served != tt.route || captured != tt.captured {
			t.Errorf("%s %q: route %q capturing %q, want %q capturing %q", tt.method, tt.path, served, captured, tt.route, tt.captured)
		}
	}
}
