// Package transfer moves files into and out of Keep: Put packs files and
// directories into blocks and writes them, several at once, returning the
// manifest; Get writes a manifest's files back, fetching blocks ahead of
// the one being written.
package transfer
