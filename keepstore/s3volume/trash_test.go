package s3volume_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
	"github.com/keepproject/keep/keepstore/volumetest"
)

// exists reports whether the bucket holds key.
func exists(t *testing.T, c *s3.Client, bucket, key string) bool {
	t.Helper()
	return contains(keys(t, c, bucket), key)
}

// wantGone checks that Open, Stat and Index do not see hash.
func wantGone(t *testing.T, v *s3volume.Volume, hash string) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := v.Open(ctx, hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Open = %v, want ErrNotFound", err)
	}
	if _, err := v.Stat(ctx, hash); !errors.Is(err, keepstore.ErrNotFound) {
		t.Errorf("Stat = %v, want ErrNotFound", err)
	}
	v.Index(ctx, "", func(bi keepstore.BlockInfo) error {
		if bi.Hash == hash {
			t.Errorf("Index lists %s", hash)
		}
		return nil
	})
}

func readBack(t *testing.T, v *s3volume.Volume, hash string) []byte {
	t.Helper()
	b, err := volumetest.Read(t, v, hash)
	if err != nil {
		t.Fatalf("reading %s: %v", hash, err)
	}
	return b
}

// Trash and Untrash, looked at from both sides: the volume's answers and
// the keys in the bucket.
func TestTrashUntrash(t *testing.T) {
	srv := s3test.Start(t)
	raw := rawClient(t, srv)
	ctx := context.Background()
	tests := []struct {
		name string
		// mtimeOff is added to the block's mtime given to Trash,
		// deadline to now for its deadline.
		mtimeOff, deadline time.Duration
		wantErr            error
		// Which of the block's keys exist afterwards.
		data, trash, recent bool
	}{
		{name: "older mtime", mtimeOff: -time.Second, deadline: time.Hour, wantErr: keepstore.ErrChanged, data: true, recent: true},
		{name: "newer mtime", mtimeOff: time.Second, deadline: time.Hour, wantErr: keepstore.ErrChanged, data: true, recent: true},
		{name: "to the trash", deadline: time.Hour, trash: true, recent: true},
		{name: "deadline now", deadline: 0},
		{name: "deadline past", deadline: -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bucket := srv.NewBucket(t)
			v := newVolume(t, srv, s3volume.Options{Bucket: bucket, PrefixLength: 3})
			data := []byte("lifecycle: " + tt.name)
			h := hashOf(data)
			key := h[:3] + "/" + h
			if err := v.Put(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			bi, err := v.Stat(ctx, h)
			if err != nil {
				t.Fatal(err)
			}
			before := keys(t, raw, bucket)
			deadline := time.Now().Add(tt.deadline)
			err = v.Trash(ctx, h, bi.Mtime.Add(tt.mtimeOff), deadline)
			if tt.wantErr == nil && err != nil || !errors.Is(err, tt.wantErr) {
				t.Fatalf("Trash = %v, want %v", err, tt.wantErr)
			}
			after := keys(t, raw, bucket)
			if tt.wantErr != nil && !slices.Equal(before, after) {
				t.Errorf("a refused Trash changed the keys from %q to %q", before, after)
			}
			for _, k := range []struct {
				key  string
				want bool
			}{{key, tt.data}, {"trash/" + key, tt.trash}, {"recent/" + key, tt.recent}} {
				if got := contains(after, k.key); got != k.want {
					t.Errorf("after Trash, key %s exists: %v, want %v (keys %q)", k.key, got, k.want, after)
				}
			}
			u, _ := v.Usage(ctx)
			if tt.data {
				if got := readBack(t, v, h); !bytes.Equal(got, data) {
					t.Errorf("block after a refused Trash reads %q", got)
				}
				if u.Blocks != 1 || u.UsedBytes != int64(len(data)) {
					t.Errorf("Usage after a refused Trash = %+v", u)
				}
				return
			}
			wantGone(t, v, h)
			if u.Blocks != 0 || u.UsedBytes != 0 {
				t.Errorf("Usage after Trash = %+v, want nothing", u)
			}
			if !tt.trash {
				if err := v.Untrash(ctx, h); !errors.Is(err, keepstore.ErrNotFound) {
					t.Errorf("Untrash of a block deleted at once = %v, want ErrNotFound", err)
				}
				return
			}

			// The deadline is in the trash copy's metadata.
			tk := "trash/" + key
			head, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &tk})
			if err != nil {
				t.Fatal(err)
			}
			if got := head.Metadata["keep-trash-deadline"]; got != strconv.FormatInt(deadline.Unix(), 10) {
				t.Errorf("trash copy's deadline metadata %q, want %d", got, deadline.Unix())
			}
			untrashed := time.Now().Truncate(time.Second)
			if err := v.Untrash(ctx, h); err != nil {
				t.Fatalf("Untrash: %v", err)
			}
			if got := readBack(t, v, h); !bytes.Equal(got, data) {
				t.Errorf("untrashed block reads %q", got)
			}
			if bi, err := v.Stat(ctx, h); err != nil || bi.Mtime.Before(untrashed) || bi.Mtime.After(time.Now()) {
				t.Errorf("Stat after Untrash = %+v, %v; want the mtime now", bi, err)
			}
			if exists(t, raw, bucket, tk) {
				t.Errorf("trash copy %s left after Untrash", tk)
			}
			if u, _ := v.Usage(ctx); u.Blocks != 1 || u.UsedBytes != int64(len(data)) {
				t.Errorf("Usage after Untrash = %+v", u)
			}
			if err := v.Untrash(ctx, h); !errors.Is(err, keepstore.ErrNotFound) {
				t.Errorf("second Untrash = %v, want ErrNotFound", err)
			}
		})
	}
}

// EmptyTrash deletes the copies whose deadline is before now, and only
// those, with their recent/ markers.
func TestEmptyTrashDeadlines(t *testing.T) {
	srv := s3test.Start(t)
	raw := rawClient(t, srv)
	ctx := context.Background()
	bucket := srv.NewBucket(t)
	v := newVolume(t, srv, s3volume.Options{Bucket: bucket})
	// Whole seconds, as the deadlines are recorded.
	now := time.Now().Truncate(time.Second).Add(time.Second)
	var hashes []string
	for i, d := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour} {
		data := []byte("due in " + d.String())
		h := hashOf(data)
		hashes = append(hashes, h)
		if err := v.Put(ctx, h, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		bi, _ := v.Stat(ctx, h)
		if err := v.Trash(ctx, h, bi.Mtime, now.Add(d)); err != nil {
			t.Fatalf("Trash of block %d: %v", i, err)
		}
	}
	for _, step := range []struct {
		at      time.Duration // after now
		deleted int
		left    []string // the trash copies left
	}{
		{0, 0, hashes},
		{59 * time.Minute, 0, hashes},
		{time.Hour + time.Second, 1, hashes[1:]},
		{2 * time.Hour, 0, hashes[1:]}, // a deadline of exactly now is not before now
		{2*time.Hour + time.Second, 1, hashes[2:]},
		{24 * time.Hour, 1, nil},
		{48 * time.Hour, 0, nil},
	} {
		n, err := v.EmptyTrash(ctx, now.Add(step.at))
		if err != nil || n != step.deleted {
			t.Errorf("EmptyTrash(now+%v) = %d, %v; want %d", step.at, n, err, step.deleted)
		}
		var left []string
		for _, k := range keys(t, raw, bucket) {
			if h, ok := cutTrash(k); ok {
				left = append(left, h)
			}
		}
		want := slices.Sorted(slices.Values(step.left))
		if !slices.Equal(left, want) {
			t.Errorf("after EmptyTrash(now+%v), trash holds %q, want %q", step.at, left, want)
		}
	}
	for _, h := range hashes {
		if exists(t, raw, bucket, "recent/"+h) {
			t.Errorf("recent/%s left after its trash was emptied", h)
		}
		if err := v.Untrash(ctx, h); !errors.Is(err, keepstore.ErrNotFound) {
			t.Errorf("Untrash of an emptied block = %v, want ErrNotFound", err)
		}
	}
}

func cutTrash(key string) (string, bool) {
	if len(key) == len("trash/")+32 && key[:6] == "trash/" {
		return key[6:], true
	}
	return "", false
}
