package apiauth

// SetJoinedHook makes every Check call f once it waits for a question
// to the registry, its own or another's.
func (c *Checker) SetJoinedHook(f func()) { c.joined = f }

// CacheSizes returns the number of entries in the caches of known and
// refused tokens, expired or not.
func (c *Checker) CacheSizes() (known, refused int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.known.size(), c.bad.size()
}
