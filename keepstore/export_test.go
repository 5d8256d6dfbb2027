package keepstore

// SetMaxBlockSize lowers the largest block s accepts, so that tests can
// send oversize bodies without sending 64 MiB.
func SetMaxBlockSize(s *Server, n int64) { s.maxBlock = n }
