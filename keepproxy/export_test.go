package keepproxy

import "time"

// SetHook makes p call f on internal events ("receiving": a PUT body's
// first bytes arrived; "response cut": a request whose client stopped
// reading has ended). Call it before serving.
func SetHook(p *Proxy, f func(event string)) { p.hook = f }

// SweepAfter runs p's idle-buffer sweep as if d had passed since now,
// releasing memory through release instead of the runtime.
func SweepAfter(p *Proxy, d time.Duration, release func()) {
	for _, b := range []*bufPool{p.writeBufs, p.readBufs} {
		b.mu.Lock()
		b.now = func() time.Time { return time.Now().Add(d) }
		b.release = release
		b.mu.Unlock()
		b.sweep()
	}
}
