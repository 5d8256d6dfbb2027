package s3volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keepproject/keep/keepstore"
)

func isNotFound(err error) bool { return errors.Is(err, keepstore.ErrNotFound) }

// copyObject copies from to to in the bucket, replacing the metadata
// with meta.
func (v *Volume) copyObject(ctx context.Context, from, to string, meta map[string]string) error {
	src := v.opts.Bucket + "/" + from
	_, err := v.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &v.opts.Bucket, Key: &to, CopySource: &src,
		Metadata: meta, MetadataDirective: types.MetadataDirectiveReplace,
	})
	return v.fail("copying "+from+" to", to, err)
}

func (v *Volume) deleteObject(ctx context.Context, key string) error {
	_, err := v.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &v.opts.Bucket, Key: &key})
	return v.fail("deleting", key, err)
}

// Trash implements keepstore.Volume: the block is copied to trash/,
// with its deadline in the copy's metadata, and then deleted. A
// deadline not after now deletes the block and its recent/ marker at
// once, with no copy (Arvados allows that only with UnsafeDelete; here
// the caller's deadline decides).
func (v *Volume) Trash(ctx context.Context, hash string, mtime, deadline time.Time) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if v.opts.ReadOnly {
		return keepstore.ErrReadOnly
	}
	defer v.lock(hash)()
	bi, err := v.Stat(ctx, hash)
	if err != nil {
		return err
	}
	if !bi.Mtime.Equal(seconds(mtime)) {
		return fmt.Errorf("%w: %s was modified at %s, listed as %s", keepstore.ErrChanged, hash,
			bi.Mtime.UTC().Format(time.RFC3339), mtime.UTC().Format(time.RFC3339))
	}
	atOnce := !deadline.After(time.Now())
	if !atOnce {
		meta := map[string]string{
			trashDeadlineMeta: strconv.FormatInt(deadline.Unix(), 10),
			trashMtimeMeta:    strconv.FormatInt(bi.Mtime.Unix(), 10),
		}
		if err := v.copyObject(ctx, v.dataKey(hash), v.trashKey(hash), meta); err != nil {
			return err
		}
	}
	v.counts.begin(hash)
	if err := v.deleteObject(ctx, v.dataKey(hash)); err != nil {
		// Whether the store deleted it is unknown: the next full
		// Index corrects the counts.
		v.counts.end(hash, 0, 0)
		return err
	}
	v.counts.end(hash, -bi.Size, -1)
	if atOnce {
		// The block is gone whatever becomes of its marker, and a
		// marker without a block is ignored: a failure here is no
		// failure of Trash.
		v.deleteObject(ctx, v.recentKey(hash))
	}
	return nil
}

// Untrash implements keepstore.Volume.
func (v *Volume) Untrash(ctx context.Context, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if v.opts.ReadOnly {
		return keepstore.ErrReadOnly
	}
	tk := v.trashKey(hash)
	out, err := v.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &v.opts.Bucket, Key: &tk})
	if err != nil {
		if err := v.fail("looking up", tk, err); !isNotFound(err) {
			return err
		}
		return fmt.Errorf("%w: no trashed copy of %s", keepstore.ErrNotFound, hash)
	}
	return v.restore(ctx, hash, aws.ToInt64(out.ContentLength))
}

// restore moves the trashed copy of a block of size bytes back.
func (v *Volume) restore(ctx context.Context, hash string, size int64) error {
	defer v.lock(hash)()
	_, err := v.exists(ctx, hash)
	if err != nil && !isNotFound(err) {
		return err
	}
	var added int64
	if err != nil {
		added = 1
	}
	v.counts.begin(hash)
	if err := v.copyObject(ctx, v.trashKey(hash), v.dataKey(hash), nil); err != nil {
		v.counts.end(hash, 0, 0)
		return err
	}
	v.counts.end(hash, added*size, added)
	if err := v.writeRecent(ctx, hash); err != nil {
		return err
	}
	return v.deleteObject(ctx, v.trashKey(hash))
}

// EmptyTrash implements keepstore.Volume. Trash past its deadline is
// deleted, with the block's recent/ marker unless the block has been
// written again; but a copy whose block was written again while it was
// being trashed, and so deleted by the trash (see raced), is restored
// instead, as Arvados guards against a PUT racing the trash. It stops at
// the first error; what is left waits for the next run.
func (v *Volume) EmptyTrash(ctx context.Context, now time.Time) (int, error) {
	if v.opts.ReadOnly {
		return 0, keepstore.ErrReadOnly
	}
	var due []string
	l := v.newLister(v.opts.Prefix+"trash/", "")
	for {
		rel, _, _, err := l.next(ctx)
		if err == io.EOF {
			break
		} else if err != nil {
			return 0, err
		}
		if h := v.hashOf(rel); h != "" {
			due = append(due, h)
		}
	}
	deleted := 0
	for _, hash := range due {
		tk := v.trashKey(hash)
		out, err := v.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &v.opts.Bucket, Key: &tk})
		if err != nil {
			if err := v.fail("looking up", tk, err); !isNotFound(err) {
				return deleted, err
			}
			continue // untrashed meanwhile
		}
		trashed := aws.ToTime(out.LastModified)
		if !v.deadlineOf(out.Metadata, trashed).Before(now) {
			continue
		}
		raced, err := v.raced(ctx, hash, out.Metadata, trashed)
		if err != nil {
			return deleted, err
		}
		if raced {
			if err := v.restore(ctx, hash, aws.ToInt64(out.ContentLength)); err != nil {
				return deleted, err
			}
			continue
		}
		if err := v.deleteObject(ctx, tk); err != nil {
			return deleted, err
		}
		deleted++
		if _, err := v.exists(ctx, hash); isNotFound(err) {
			// Best effort, as in Trash: a stray marker is harmless.
			v.deleteObject(ctx, v.recentKey(hash))
		}
	}
	return deleted, nil
}

// raced reports whether the block of a trash copy (with metadata meta,
// made at trashed) was written again after Trash checked its mtime, by
// another server on the bucket between that check and the delete, so
// that the delete removed a block just acknowledged: the recent/ marker
// is newer than the mtime Trash verified, and the block is missing.
//
// Arvados records no such mtime. For its trash objects, a marker within
// RaceWindow before the trashing stands for it (Arvados trashes only
// blocks older than BlobSigningTTL, so a fresher marker means a race);
// a negative RaceWindow turns that guess off.
//
// An error means the store could not say; the copy must then stay.
func (v *Volume) raced(ctx context.Context, hash string, meta map[string]string, trashed time.Time) (bool, error) {
	rk := v.recentKey(hash)
	out, err := v.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &v.opts.Bucket, Key: &rk})
	if err != nil {
		if err := v.fail("looking up", rk, err); !isNotFound(err) {
			return false, err
		}
		return false, nil // no marker, no write since
	}
	recent := seconds(aws.ToTime(out.LastModified))
	if s, ok := meta[trashMtimeMeta]; ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err == nil && !recent.After(time.Unix(n, 0)) {
			return false, nil
		}
	} else if v.opts.RaceWindow < 0 || recent.Before(trashed.Add(-v.opts.RaceWindow)) {
		return false, nil
	}
	switch _, err := v.exists(ctx, hash); {
	case isNotFound(err):
		return true, nil
	case err != nil:
		return false, err
	}
	return false, nil
}
