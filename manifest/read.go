package manifest

import (
	"context"
	"fmt"
	"io"

	"github.com/keepproject/keep/locator"
)

// FetchFunc returns the content of the block l names.
type FetchFunc func(ctx context.Context, l locator.Locator) ([]byte, error)

// WriteFile writes the content of f to w, getting blocks from fetch. A
// block is fetched once for each run of consecutive segments in it, so a
// file packed with others into one block costs one fetch. WriteFile is done
// with a fetched slice before it calls fetch again or returns, so fetch may
// reuse one buffer from call to call.
//
// A block whose length differs from its locator's size is an error, as is
// a segment outside its block.
func WriteFile(ctx context.Context, f File, fetch FetchFunc, w io.Writer) error {
	const op = "writing a file"
	var (
		cur  blockKey
		data []byte
		have bool
	)
	for _, s := range f.Segments {
		if s.Length == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %q: %w", op, f.Path, err)
		}
		if k := keyOf(s.Block); !have || k != cur {
			var err error
			data, err = fetch(ctx, s.Block)
			if err != nil {
				return fmt.Errorf("%s: %q: block %s: %w", op, f.Path, s.Block.Bare(), err)
			}
			if s.Block.Size >= 0 && int64(len(data)) != s.Block.Size {
				return fmt.Errorf("%s: %q: block %s: got %d bytes", op, f.Path, s.Block.Bare(), len(data))
			}
			cur, have = k, true
		}
		if s.Offset < 0 || s.Length < 0 || s.Offset > int64(len(data)) || s.Length > int64(len(data))-s.Offset {
			return fmt.Errorf("%s: %q: range %d+%d is outside block %s", op, f.Path, s.Offset, s.Length, s.Block.Bare())
		}
		if _, err := w.Write(data[s.Offset : s.Offset+s.Length]); err != nil {
			return fmt.Errorf("%s: %q: %w", op, f.Path, err)
		}
	}
	return nil
}
