package keepstore

// SetMaxListBytes sets the bound on PUT /pull and PUT /trash bodies
// until the returned function restores it. Tests that call it must not
// run in parallel.
func SetMaxListBytes(n int64) (restore func()) {
	old := maxListBytes
	maxListBytes = n
	return func() { maxListBytes = old }
}
