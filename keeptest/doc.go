// Package keeptest runs an in-process cluster of Keep block servers with
// fault injection, for testing Keep clients.
//
// Each server is a real HTTP server on 127.0.0.1 (started with
// net/http/httptest) that speaks the keepstore block API: PUT /hash stores
// a block after checking its MD5, GET and HEAD /locator read it back. Every
// request is recorded, so tests can assert exactly what a client sent, to
// which server and in what order. Knobs on each Server inject the faults a
// client must survive: scripted status codes, full or read-only servers,
// odd replica, storage-class and volume headers (servers that seem to
// share a volume), delays, stalls, answers held until the test releases
// them, slow reads, connection resets, corrupt data and dead servers.
//
// A typical test:
//
//	func TestPutRetries(t *testing.T) {
//		c := keeptest.NewCluster(t, 3)
//		top := c.ProbeOrder(hash)[0]
//		top.Script(keeptest.Response{Status: 500}) // first PUT fails, then normal
//		// ... point the client at c.Services() and write the block ...
//		if got := len(c.Holders(hash)); got != 2 { ... }
//		for _, r := range c.PutRequests() { ... }
//	}
//
// NewCluster closes the cluster when the test ends. Start does the same
// without a testing.TB; its caller must call Close.
//
// Waiting for events: WaitRequests, WaitStalled, WaitHeld and WaitIdle
// block until the cluster reaches a state (or a context ends), so tests
// never need to sleep.
package keeptest
