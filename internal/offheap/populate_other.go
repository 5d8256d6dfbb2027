//go:build unix && !linux

package offheap

const populate = 0
