package s3volume

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
// with its deadline in the copy's metadata, and then deleted.
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
	if deadline.After(time.Now()) {
		meta := map[string]string{trashDeadlineMeta: strconv.FormatInt(deadline.Unix(), 10)}
		if err := v.copyObject(ctx, v.dataKey(hash), v.trashKey(hash), meta); err != nil {
			return err
		}
	}
	if err := v.deleteObject(ctx, v.dataKey(hash)); err != nil {
		return err
	}
	v.mu.Lock()
	v.used -= bi.Size
	v.blocks--
	v.mu.Unlock()
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
	_, statErr := v.Stat(ctx, hash)
	if err := v.copyObject(ctx, v.trashKey(hash), v.dataKey(hash), nil); err != nil {
		return err
	}
	if err := v.writeRecent(ctx, hash); err != nil {
		return err
	}
	if err := v.deleteObject(ctx, v.trashKey(hash)); err != nil {
		return err
	}
	if isNotFound(statErr) {
		v.mu.Lock()
		v.used += size
		v.blocks++
		v.mu.Unlock()
	}
	return nil
}

// EmptyTrash implements keepstore.Volume. Trash past its deadline is
// deleted, except when the block was written again within RaceWindow
// of being trashed and is missing (a PUT raced the trash, as Arvados
// guards against): that copy is restored instead.
func (v *Volume) EmptyTrash(ctx context.Context, now time.Time) (int, error) {
	if v.opts.ReadOnly {
		return 0, keepstore.ErrReadOnly
	}
	trashDir := v.opts.Prefix + "trash/"
	var due []string
	err := v.list(ctx, trashDir, func(key string, _ int64, _ time.Time) error {
		if h := v.hashOf(strings.TrimPrefix(key, trashDir)); h != "" {
			due = append(due, h)
		}
		return nil
	})
	if err != nil {
		return 0, err
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
		if v.raced(ctx, hash, trashed) {
			if err := v.restore(ctx, hash, aws.ToInt64(out.ContentLength)); err != nil {
				return deleted, err
			}
			continue
		}
		if err := v.deleteObject(ctx, tk); err != nil {
			return deleted, err
		}
		deleted++
	}
	return deleted, nil
}

// raced reports whether a block trashed at trashed was written again
// within the race window and is now missing.
func (v *Volume) raced(ctx context.Context, hash string, trashed time.Time) bool {
	if v.opts.RaceWindow < 0 {
		return false
	}
	rk := v.recentKey(hash)
	out, err := v.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &v.opts.Bucket, Key: &rk})
	if err != nil || aws.ToTime(out.LastModified).Before(trashed.Add(-v.opts.RaceWindow)) {
		return false
	}
	_, err = v.Stat(ctx, hash)
	return isNotFound(err)
}
