package protocol

import (
	"bytes"
	"crypto/md5"
	"slices"
)

// SortMounts sorts items, a server's mounts, in a block's order among
// them: by the MD5 of the block hash followed by the mount's uuid,
// smallest first (stable for equal uuids). A server looks for a block on
// its mounts, and writes one a request names no mount for, in this
// order; keep balance uses it to foresee where a pull will land.
func SortMounts[T any](hash string, items []T, uuid func(T) string) {
	type weighted struct {
		w    [md5.Size]byte
		item T
	}
	ws := make([]weighted, len(items))
	for i, it := range items {
		ws[i] = weighted{md5.Sum([]byte(hash + uuid(it))), it}
	}
	slices.SortStableFunc(ws, func(a, b weighted) int { return bytes.Compare(a.w[:], b.w[:]) })
	for i, w := range ws {
		items[i] = w.item
	}
}
