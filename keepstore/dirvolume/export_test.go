package dirvolume

import "context"

// OpenWithScanHook is Open, with hook called by the scan after it reads
// each block subdirectory (numbered 0 to 4095), before it counts it.
func OpenWithScanHook(root string, opts Options, hook func(ctx context.Context, shard int)) (*Directory, error) {
	return open(root, opts, hook)
}
