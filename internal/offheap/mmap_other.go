//go:build !unix

package offheap

// mapMemory allocates from the heap where memory cannot be mapped.
func mapMemory(size int) ([]byte, func(), error) {
	return make([]byte, size), func() {}, nil
}
