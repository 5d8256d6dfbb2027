package synth

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
)

// Servers are a cluster's block servers, listening on loopback.
type Servers struct {
	// Services name them, as a keep_services/accessible list does.
	Services []keepclient.Service
	servers  []*httptest.Server
}

// Close stops the servers.
func (s *Servers) Close() {
	for _, srv := range s.servers {
		srv.Close()
	}
}

// Serve starts the cluster's servers on 127.0.0.1, each on a port of
// its own, answering the management API's reads to the system token:
// GET /mounts (one volume each, writable and trashable), GET
// /mounts/UUID/blocks[?prefix=P] and GET /index[/P] (its index, made as
// it is written, ending with an empty line). Anything else is 404, and
// a request without the token 401. Close them when done.
func (c *Cluster) Serve(token string) *Servers {
	out := &Servers{}
	for s, svc := range c.services {
		srv := httptest.NewServer(&handler{c: c, server: s, token: token})
		out.servers = append(out.servers, srv)
		port, _ := strconv.Atoi(srv.URL[strings.LastIndexByte(srv.URL, ':')+1:])
		svc.Port = port
		out.Services = append(out.Services, svc)
	}
	return out
}

// handler is one server of a cluster.
type handler struct {
	c      *Cluster
	server int
	token  string
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+h.token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "a synthetic server only reads", http.StatusMethodNotAllowed)
		return
	}
	uuid := MountUUID(h.server)
	p := r.URL.Path
	switch {
	case p == "/mounts":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode([]protocol.Mount{{
			UUID: uuid, DeviceID: "synth-" + uuid, AllowWrite: true, AllowTrash: true,
			Replication: 1, StorageClasses: map[string]bool{"default": true},
		}})
	case p == "/mounts/"+uuid+"/blocks" || p == "/index":
		h.index(w, r, r.URL.Query().Get("prefix"))
	case strings.HasPrefix(p, "/index/"):
		h.index(w, r, strings.TrimPrefix(p, "/index/"))
	default:
		http.NotFound(w, r)
	}
}

// index writes the server's index: the blocks it holds whose hash
// starts with prefix, as "hash+size mtime" lines, then an empty line.
func (h *handler) index(w http.ResponseWriter, r *http.Request, prefix string) {
	if len(prefix) > 32 || strings.Trim(prefix, "0123456789abcdef") != "" {
		http.Error(w, "invalid index prefix", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	bw := bufio.NewWriterSize(w, 64<<10)
	var line []byte
	var hexHash [32]byte
	pfx := []byte(prefix)
	for i := range h.c.cfg.Blocks {
		if i%(1<<16) == 0 && r.Context().Err() != nil {
			return
		}
		if !h.c.Holds(i, h.server) {
			continue
		}
		h.c.hexHash(i, hexHash[:])
		if !bytes.HasPrefix(hexHash[:], pfx) {
			continue
		}
		line = append(line[:0], hexHash[:]...)
		line = append(line, '+')
		line = strconv.AppendInt(line, Size(hexHash[:]), 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, Mtime(i, h.server), 10)
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return
		}
	}
	bw.WriteString("\n")
	bw.Flush()
}
