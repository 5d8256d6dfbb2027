package s3volume

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keepproject/keep/keepstore"
)

// A listing of a big bucket is split into parts by hash prefix, since
// one listing request waits for the one before (it starts where that
// page ended): 10M blocks and their markers are 20,000 pages, over an
// hour at 0.2 s a page. Hashes are uniform, so the first page of a
// listing tells how far into the prefix's key space a page reaches, and
// hence roughly how many blocks the prefix holds.
const (
	// partLookahead is how many batches of a page each the listing of a
	// part gets ahead of fn before it waits. Parts are made to hold
	// about that many pages of blocks, or fewer: a part's listing that
	// waits is one fewer in flight.
	partLookahead = 4
	// maxPartDigits bounds the hex digits a listing adds to its prefix
	// to make its parts: 65,536 parts of up to 4 pages each are 262M
	// blocks; beyond that parts grow, and listings wait.
	maxPartDigits = 4
)

// listFunc lists the blocks whose hash starts with prefix, in hash
// order, and stops at the first error fn returns.
type listFunc func(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error

// listParts passes to fn, in hash order, what list finds under prefix:
// in one call when the first page of blocks under prefix holds them all
// or Options.IndexConcurrency is 1, else as parts of partDigits more hex
// digits listed Options.IndexConcurrency at a time, each at most
// partLookahead pages ahead of fn. It returns once every listing it
// started has stopped.
func (v *Volume) listParts(ctx context.Context, prefix string, list listFunc, fn func(keepstore.BlockInfo) error) error {
	digits, err := v.partDigits(ctx, prefix)
	if err != nil {
		return err
	}
	if digits == 0 {
		return list(ctx, prefix, fn)
	}
	nParts := 1 << (4 * digits)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	start := func(i int) <-chan partBatch {
		ch := make(chan partBatch, partLookahead)
		wg.Go(func() { v.listPart(ctx, prefix+hexDigits(i, digits), list, ch) })
		return ch
	}
	window := make([]<-chan partBatch, min(v.opts.IndexConcurrency, nParts))
	for i := range window {
		window[i] = start(i)
	}
	for i := range nParts {
		for b := range window[i%len(window)] {
			if b.err != nil {
				return b.err
			}
			for _, info := range b.blocks {
				if err := fn(info); err != nil {
					return err
				}
			}
		}
		// A part's listing stops early only when ctx is done.
		if err := ctx.Err(); err != nil {
			return err
		}
		if next := i + len(window); next < nParts {
			window[i%len(window)] = start(next)
		}
	}
	return nil
}

// partBatch is some of a part's blocks, in order, or the error that
// ended its listing.
type partBatch struct {
	blocks []keepstore.BlockInfo
	err    error
}

// listPart sends what list finds under prefix to ch in batches of a
// page, then closes ch. When ctx is done it stops, and may drop the
// rest and its error.
func (v *Volume) listPart(ctx context.Context, prefix string, list listFunc, ch chan<- partBatch) {
	defer close(ch)
	send := func(b partBatch) bool {
		select {
		case ch <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var batch []keepstore.BlockInfo
	err := list(ctx, prefix, func(info keepstore.BlockInfo) error {
		batch = append(batch, info)
		if len(batch) < v.opts.IndexPageSize {
			return nil
		}
		if !send(partBatch{blocks: batch}) {
			return ctx.Err()
		}
		batch = nil
		return nil
	})
	if err != nil {
		send(partBatch{err: err})
		return
	}
	if len(batch) > 0 {
		send(partBatch{blocks: batch})
	}
}

// partDigits returns how many hex digits to add to prefix to split its
// listing into parts of at most about partLookahead pages of blocks: 0, for one
// listing, when the first page holds every block under prefix (or
// Options.IndexConcurrency is 1), else from how far into prefix's key
// space that page reached (see partDigitsFor).
func (v *Volume) partDigits(ctx context.Context, prefix string) (int, error) {
	if v.opts.IndexConcurrency <= 1 || len(prefix) == 32 {
		return 0, nil
	}
	keyPrefix := v.opts.Prefix + v.listRel(prefix)
	page, err := v.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &v.opts.Bucket, Prefix: &keyPrefix, MaxKeys: aws.Int32(int32(v.opts.IndexPageSize)),
	})
	if err != nil {
		return 0, v.fail("listing", keyPrefix+"*", err)
	}
	if !aws.ToBool(page.IsTruncated) {
		return 0, nil
	}
	last := ""
	for _, o := range page.Contents {
		rel := strings.TrimPrefix(aws.ToString(o.Key), v.opts.Prefix)
		if pastBlocks(rel) {
			return 0, nil // the blocks ended within the page
		}
		if h := v.hashOf(rel); h != "" && strings.HasPrefix(h, prefix) {
			last = h
		}
	}
	return partDigitsFor(prefix, last, len(page.Contents), v.opts.IndexPageSize), nil
}

// partDigitsFor returns how many hex digits to add to prefix for parts
// of at most about partLookahead pages of pageSize keys, given that the first keys
// keys under prefix reached the hash last (empty if none was a block's):
// at least 1, at most maxPartDigits (and 32 digits in all).
func partDigitsFor(prefix, last string, keys, pageSize int) int {
	most := min(maxPartDigits, 32-len(prefix))
	if last == "" {
		return 1
	}
	// How far last is into prefix's key space, from 0 to 1.
	reached, scale := 0.0, 1.0
	for i := len(prefix); i < min(len(last), len(prefix)+12); i++ {
		scale /= 16
		reached += float64(digit(last[i:])) * scale
	}
	total := float64(keys) / max(reached, 1e-12)
	digits := 1
	for parts := 16.0; digits < most && total/parts > partLookahead*float64(pageSize); parts *= 16 {
		digits++
	}
	return digits
}

// hexDigits is i as n lowercase hex digits.
func hexDigits(i, n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for j := n - 1; j >= 0; j-- {
		b[j] = hex[i&15]
		i >>= 4
	}
	return string(b)
}
