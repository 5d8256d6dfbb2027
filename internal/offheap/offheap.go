// Package offheap allocates slices of pointer-free values outside the
// Go heap, in memory mapped from the operating system: for tables of
// hundreds of millions of small records, which the garbage collector
// then neither scans nor paces itself by. A heap of 600 MB of such
// records, collected at the default GOGC, may reach twice that before a
// collection; mapped, the records cost their size and the heap stays
// small.
package offheap

import (
	"fmt"
	"reflect"
	"unsafe"
)

// Make returns a slice of n zero Ts in memory of its own, and free,
// which returns the memory: the slice, and any pointer into it, must
// not be used after. T must hold no pointers, which the collector would
// not see there; Make panics if it does. n of 0 returns a nil slice.
func Make[T any](n int) (s []T, free func(), err error) {
	t := reflect.TypeFor[T]()
	if hasPointers(t) {
		panic(fmt.Sprintf("offheap.Make: %v holds pointers", t))
	}
	size := int(t.Size()) * n
	if n == 0 || size == 0 {
		return nil, func() {}, nil
	}
	mem, free, err := mapMemory(size)
	if err != nil {
		return nil, nil, fmt.Errorf("mapping %d bytes for %d records: %w", size, n, err)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n), free, nil
}

// hasPointers reports whether values of t hold pointers.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}
