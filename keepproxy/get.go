package keepproxy

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/keepclient"
	"github.com/keepproject/keep/locator"
)

// get serves GET and HEAD. Each holds a read slot; a GET also holds a
// buffer of its block's size (64 MiB when the locator has no size hint,
// since keepclient.Get would otherwise allocate one beyond the pool).
func (p *Proxy) get(w http.ResponseWriter, r *http.Request, kc *keepclient.Client, loc locator.Locator) {
	select {
	case p.readSlots <- struct{}{}:
		defer func() { <-p.readSlots }()
	default:
		busy(w, "proxy busy: too many reads in progress")
		return
	}
	if r.Method == http.MethodHead {
		size, err := kc.Head(r.Context(), loc)
		if err != nil {
			readFailure(w, err)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		return
	}
	size := loc.Size
	if size < 0 {
		size = locator.MaxBlockSize
	}
	var buf []byte
	if size > 0 {
		if buf = p.readBufs.get(int(size)); buf == nil {
			busy(w, "proxy busy: read buffers full")
			return
		}
		defer p.readBufs.put(buf)
	}
	data, err := kc.Get(r.Context(), loc, buf[:0])
	if err != nil {
		readFailure(w, err)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(data)
}

// readFailure answers a GET or HEAD that failed: 404 when every server
// said so, else 502 (protocol.ProxyStatus).
func readFailure(w http.ResponseWriter, err error) {
	var nf *keepclient.NotFoundError
	status, _ := protocol.ProxyStatus(protocol.ProxyFailure{NotFound: errors.As(err, &nf)})
	http.Error(w, err.Error(), status)
}
