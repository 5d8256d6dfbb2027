//go:build unix

package offheap

import "golang.org/x/sys/unix"

// mapMemory maps size bytes of zeroed, private memory, populated at
// once where the system can (Linux): the records are written next, and
// one call faults in their pages faster than a fault at each page.
func mapMemory(size int) ([]byte, func(), error) {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|populate)
	if err != nil {
		return nil, nil, err
	}
	return mem, func() { unix.Munmap(mem) }, nil
}
