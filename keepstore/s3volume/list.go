package s3volume

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

// listRel returns the key prefix, below the volume's, of the blocks
// whose hash starts with prefix.
func (v *Volume) listRel(prefix string) string {
	if p := v.opts.PrefixLength; p > 0 && len(prefix) >= p {
		return prefix[:p] + "/" + prefix
	}
	return prefix
}

// hashOf returns the block hash a key below the volume's prefix names,
// or "" if it names none (a marker, the uuid, a stranger's object).
func (v *Volume) hashOf(rel string) string {
	hash := rel
	if p := v.opts.PrefixLength; p > 0 {
		dir, h, ok := strings.Cut(rel, "/")
		if !ok || len(h) < p || dir != h[:p] {
			return ""
		}
		hash = h
	}
	if locator.ParseHash(hash) != nil {
		return ""
	}
	return hash
}

// list calls fn for every object whose key starts with prefix, in key
// order.
func (v *Volume) list(ctx context.Context, prefix string, fn func(key string, size int64, modified time.Time) error) error {
	pages := s3.NewListObjectsV2Paginator(v.client, &s3.ListObjectsV2Input{Bucket: &v.opts.Bucket, Prefix: &prefix})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return v.fail("listing", prefix+"*", err)
		}
		for _, o := range page.Contents {
			if err := fn(aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToTime(o.LastModified)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Index implements keepstore.Volume. Each block's time is its recent/
// marker's, listed alongside.
func (v *Volume) Index(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error {
	if len(prefix) > 32 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return fmt.Errorf("invalid index prefix %q", prefix)
	}
	rel := v.listRel(prefix)
	recentDir := v.opts.Prefix + "recent/"
	recent := map[string]time.Time{}
	err := v.list(ctx, recentDir+rel, func(key string, _ int64, mod time.Time) error {
		if h := v.hashOf(strings.TrimPrefix(key, recentDir)); h != "" {
			recent[h] = seconds(mod)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return v.list(ctx, v.opts.Prefix+rel, func(key string, size int64, mod time.Time) error {
		h := v.hashOf(strings.TrimPrefix(key, v.opts.Prefix))
		if h == "" || !strings.HasPrefix(h, prefix) {
			return nil
		}
		mt, ok := recent[h]
		if !ok {
			mt = seconds(mod)
		}
		return fn(keepstore.BlockInfo{Hash: h, Size: size, Mtime: mt})
	})
}

// count sets the usage counts from a listing of the bucket.
func (v *Volume) count(ctx context.Context) error {
	var used, blocks int64
	err := v.list(ctx, v.opts.Prefix, func(key string, size int64, _ time.Time) error {
		if v.hashOf(strings.TrimPrefix(key, v.opts.Prefix)) != "" {
			used += size
			blocks++
		}
		return nil
	})
	v.mu.Lock()
	v.used, v.blocks = used, blocks
	v.mu.Unlock()
	return err
}

// readUUID returns the volume's uuid: Options.UUID, else the one kept
// in the bucket, created if the volume is writable and has none.
func (v *Volume) readUUID(ctx context.Context) (string, error) {
	if v.opts.UUID != "" {
		if !keepstore.IsVolumeUUID(v.opts.UUID) {
			return "", fmt.Errorf("S3 volume %s: uuid %q is not a volume uuid (like keep0-nyw5e-0123456789abcde)", v.location, v.opts.UUID)
		}
		return v.opts.UUID, nil
	}
	key := v.opts.Prefix + uuidKey
	out, err := v.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &v.opts.Bucket, Key: &key})
	if err == nil {
		defer out.Body.Close()
		var b [64]byte
		n, _ := out.Body.Read(b[:])
		id := strings.TrimSpace(string(b[:n]))
		if !keepstore.IsVolumeUUID(id) {
			return "", fmt.Errorf("S3 volume %s: %s holds %q, not a volume uuid", v.location, key, id)
		}
		return id, nil
	}
	if err := v.fail("reading", key, err); !isNotFound(err) {
		return "", err
	}
	if v.opts.ReadOnly {
		return keepstore.DerivedVolumeUUID("s3://" + v.opts.Bucket + "/" + v.opts.Prefix), nil
	}
	id := keepstore.NewVolumeUUID()
	_, err = v.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &v.opts.Bucket, Key: &key, Body: strings.NewReader(id + "\n")})
	if err != nil {
		return "", v.fail("writing", key, err)
	}
	return id, nil
}
