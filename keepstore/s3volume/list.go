package s3volume

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

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

// pastBlocks reports whether a key below the volume's prefix sorts after
// every block's: data keys start with a hex digit, and recent/, trash/
// and the uuid object all sort after "f", so a listing of blocks can stop
// there instead of paging through the markers and the trash.
func pastBlocks(rel string) bool { return rel != "" && rel[0] > 'f' }

// lister reads a listing of the keys starting with dir+start, in key
// order, one page at a time.
type lister struct {
	v     *Volume
	dir   string // stripped from the keys returned
	start string
	pages *s3.ListObjectsV2Paginator
	page  []types.Object
	err   error // why the listing ended: io.EOF at its end
}

func (v *Volume) newLister(dir, start string) *lister {
	return &lister{v: v, dir: dir, start: start, pages: s3.NewListObjectsV2Paginator(v.client, &s3.ListObjectsV2Input{
		Bucket: &v.opts.Bucket, Prefix: aws.String(dir + start), MaxKeys: aws.Int32(int32(v.opts.IndexPageSize)),
	})}
}

// next returns the next object's key below dir, its size and
// LastModified; io.EOF at the end, or the error that ended the listing.
func (l *lister) next(ctx context.Context) (rel string, size int64, modified time.Time, err error) {
	for len(l.page) == 0 {
		if l.err != nil {
			return "", 0, time.Time{}, l.err
		}
		if !l.pages.HasMorePages() {
			l.err = io.EOF
			continue
		}
		page, err := l.pages.NextPage(ctx)
		if err != nil {
			l.err = l.v.fail("listing", l.dir+l.start+"*", err)
			continue
		}
		l.page = page.Contents
	}
	o := l.page[0]
	l.page = l.page[1:]
	return strings.TrimPrefix(aws.ToString(o.Key), l.dir), aws.ToInt64(o.Size), aws.ToTime(o.LastModified), nil
}

// eachBlock calls fn for every data object whose hash starts with prefix,
// in hash order, with its key below the volume's prefix.
func (v *Volume) eachBlock(ctx context.Context, prefix string, fn func(rel, hash string, size int64, modified time.Time) error) error {
	l := v.newLister(v.opts.Prefix, v.listRel(prefix))
	for {
		key, size, modified, err := l.next(ctx)
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if pastBlocks(key) {
			return nil
		}
		h := v.hashOf(key)
		if h == "" || !strings.HasPrefix(h, prefix) {
			continue
		}
		if err := fn(key, h, size, modified); err != nil {
			return err
		}
	}
}

// Index implements keepstore.Volume. Each block's time is its recent/
// marker's, read from a listing of the markers walked alongside that of
// the blocks (both sort the same way). A listing longer than a page is
// split by hash prefix into parts listed Options.IndexConcurrency at a
// time (see listParts), so memory stays a few pages per part in flight
// however big the bucket. An index of all blocks, or of one hex
// digit's, also corrects the counts Usage reports (see counts).
func (v *Volume) Index(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error {
	if len(prefix) > 32 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return fmt.Errorf("invalid index prefix %q", prefix)
	}
	recount := v.counts.recount(prefix)
	err := v.listParts(ctx, prefix, v.indexPart, func(b keepstore.BlockInfo) error {
		recount.add(b.Hash, b.Size)
		return fn(b)
	})
	if err != nil {
		return err
	}
	recount.settle()
	return nil
}

// indexPart passes to fn the blocks whose hash starts with prefix, in
// hash order, each with its marker's time: one listing of the blocks and
// one of the markers, a page of each at a time.
func (v *Volume) indexPart(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error {
	markers := v.newLister(v.opts.Prefix+"recent/", v.listRel(prefix))
	var marker string // the last marker read, below recent/
	var markerTime time.Time
	return v.eachBlock(ctx, prefix, func(rel, hash string, size int64, modified time.Time) error {
		for marker < rel {
			m, _, t, err := markers.next(ctx)
			if err == io.EOF {
				marker = "\xff" // after every key
				break
			} else if err != nil {
				return err
			}
			marker, markerTime = m, t
		}
		mtime := modified
		if marker == rel {
			mtime = markerTime
		}
		return fn(keepstore.BlockInfo{Hash: hash, Size: size, Mtime: seconds(mtime)})
	})
}

// countPart passes to fn the blocks whose hash starts with prefix, with
// their sizes but not their times: the listing the counts need.
func (v *Volume) countPart(ctx context.Context, prefix string, fn func(keepstore.BlockInfo) error) error {
	return v.eachBlock(ctx, prefix, func(_, hash string, size int64, _ time.Time) error {
		return fn(keepstore.BlockInfo{Hash: hash, Size: size})
	})
}

// count sets the usage counts from a listing of the bucket.
func (v *Volume) count(ctx context.Context) error {
	recount := v.counts.recount("")
	err := v.listParts(ctx, "", v.countPart, func(b keepstore.BlockInfo) error {
		recount.add(b.Hash, b.Size)
		return nil
	})
	if err != nil {
		return err
	}
	recount.settle()
	return nil
}

// readUUID returns the volume's uuid: the one kept in the bucket, else
// Options.UUID, else a new one; a writable volume keeps the uuid it
// gets. A bucket keeping a uuid other than Options.UUID is refused
// (*keepstore.UUIDMismatchError), as a Directory is: served under a new
// uuid it would look to keep balance like a new, empty volume.
func (v *Volume) readUUID(ctx context.Context) (string, error) {
	want := v.opts.UUID
	if want != "" && !keepstore.IsVolumeUUID(want) {
		return "", fmt.Errorf("S3 volume %s: uuid %q is not a volume uuid (like keep0-nyw5e-0123456789abcde)", v.location, want)
	}
	key := v.opts.Prefix + uuidKey
	out, err := v.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &v.opts.Bucket, Key: &key})
	if err == nil {
		defer out.Body.Close()
		b, err := io.ReadAll(io.LimitReader(out.Body, 64))
		if err != nil {
			return "", v.fail("reading", key, err)
		}
		id := strings.TrimSpace(string(b))
		switch {
		case !keepstore.IsVolumeUUID(id):
			return "", fmt.Errorf("S3 volume %s: %s holds %q, not a volume uuid", v.location, key, id)
		case want != "" && id != want:
			return "", &keepstore.UUIDMismatchError{Root: v.location, Kept: id, Configured: want}
		}
		return id, nil
	}
	if err := v.fail("reading", key, err); !isNotFound(err) {
		return "", err
	}
	if v.opts.ReadOnly {
		return cmp.Or(want, keepstore.DerivedVolumeUUID("s3://"+v.opts.Bucket+"/"+v.opts.Prefix)), nil
	}
	id := cmp.Or(want, keepstore.NewVolumeUUID())
	_, err = v.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &v.opts.Bucket, Key: &key, Body: strings.NewReader(id + "\n")})
	if err != nil {
		return "", v.fail("writing", key, err)
	}
	return id, nil
}
