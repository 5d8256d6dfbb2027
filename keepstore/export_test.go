package keepstore

import (
	"sync"
	"time"
)

// SetMaxBlockSize lowers the largest block s accepts, so that tests can
// send oversize bodies without sending 64 MiB.
func SetMaxBlockSize(s *Server, n int64) { s.maxBlock = n }

// SetEvictAfter sets how far behind the minimum rate an upload must be
// before another may take its write slot, so that tests need not wait
// for the default second.
func SetEvictAfter(s *Server, d time.Duration) { s.writes.evictAfter = d }

// SetManagementToken replaces s's management token, so that tests can
// run a server with none although their helper always sets one.
func SetManagementToken(s *Server, tok string) { s.mgmtToken = tok }

// TakeReadSlots takes every read slot of s, as that many slow reads
// would, until release is first called.
func TakeReadSlots(s *Server) (release func()) {
	if !s.limiter.TryAcquire(int64(s.maxRequests)) {
		panic("read slots in use")
	}
	return sync.OnceFunc(func() { s.limiter.Release(int64(s.maxRequests)) })
}
