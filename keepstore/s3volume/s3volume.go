// Package s3volume is a keepstore.Volume keeping blocks in an
// S3-compatible object store (AWS S3, Ceph RGW, MinIO, Garage,
// versitygw), in the layout of Arvados keepstore's S3 volumes, so that
// an existing Arvados bucket can be served:
//
//   - a block is the object PREFIX+KEY, where KEY is HASH, or
//     HASH[:P]/HASH with PrefixLength P;
//   - PREFIX+recent/KEY is an empty object written after every write,
//     touch and untrash: its LastModified is the block's modification
//     time (S3 cannot change an object's own);
//   - a trashed block is PREFIX+trash/KEY, a copy made before the block
//     is deleted, with its deadline and the mtime Trash verified in the
//     object's metadata (x-amz-meta-keep-trash-deadline and
//     x-amz-meta-keep-trash-mtime, Unix seconds). A trash object
//     without a deadline (written by Arvados) is due its LastModified
//     plus Options.TrashLifetime.
//
// Uploads stream with the block's MD5 as Content-MD5, so the store
// itself refuses a body that arrives corrupt, and a block is
// acknowledged only once the store has it whole. Modification times are
// whole seconds, as S3's Last-Modified header gives them.
//
// Importing the package registers the S3 volume driver with
// keepstore.RegisterDriver: s3:// URLs (ParseURL) and Arvados' Driver:
// S3 (ArvadosOptions).
package s3volume

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/locator"
)

// Metadata of a trash copy: its deadline, and the block's mtime that
// Trash verified (for EmptyTrash's race check), both in Unix seconds.
const (
	trashDeadlineMeta = "keep-trash-deadline"
	trashMtimeMeta    = "keep-trash-mtime"
)

// uuidKey is the object holding the volume's uuid, under the prefix.
const uuidKey = "keep-volume-uuid"

// Volume is an S3 volume. It is safe for concurrent use.
type Volume struct {
	client   *s3.Client
	opts     Options
	httpC    *http.Client // closed by Close, if ours
	ownHTTP  bool
	uuid     string
	location string // bucket/prefix at endpoint, for messages

	counts counts

	mu      sync.Mutex           // protects writing
	writing map[string]*hashLock // by hash: writes in flight
}

// hashLock orders the writes of one block, so that each finds out
// truly whether the block existed before it, for the counts.
type hashLock struct {
	sync.Mutex
	refs int // holders and waiters; guarded by Volume.mu
}

// lock takes the write lock of hash and returns its release.
func (v *Volume) lock(hash string) func() {
	v.mu.Lock()
	if v.writing == nil {
		v.writing = map[string]*hashLock{}
	}
	l := v.writing[hash]
	if l == nil {
		l = &hashLock{}
		v.writing[hash] = l
	}
	l.refs++
	v.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		v.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(v.writing, hash)
		}
		v.mu.Unlock()
	}
}

var (
	_ keepstore.Volume           = (*Volume)(nil)
	_ keepstore.UUIDKeeper       = (*Volume)(nil)
	_ keepstore.DeviceIdentifier = (*Volume)(nil)
)

// Open connects to the bucket, checks that it is reachable, reads (or,
// on a writable volume, creates) the volume's uuid, and counts the
// blocks stored by listing them. When the endpoint does not answer, or
// answers with a server error, the error wraps keepstore.ErrVolumeMissing.
func Open(ctx context.Context, o Options) (*Volume, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	cfg, err := o.awsConfig(ctx)
	if err != nil {
		return nil, err
	}
	v := &Volume{opts: o, location: o.String()}
	endpoint := o.Endpoint
	if o.HTTPClient == nil {
		d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
		tr := &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           d.DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: o.ReadTimeout,
			TLSHandshakeTimeout:   o.ConnectTimeout,
		}
		if sock, ok := strings.CutPrefix(endpoint, "unix://"); ok {
			// A local server on a Unix socket (keep up --s3): any host
			// in the URL reaches it.
			tr.Proxy = nil
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", sock) }
			endpoint = "http://s3.local"
		}
		v.httpC, v.ownHTTP = &http.Client{Transport: tr}, true
		cfg.HTTPClient = v.httpC
	} else {
		v.httpC = o.HTTPClient
		cfg.HTTPClient = o.HTTPClient
	}
	v.client = s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.UsePathStyle = true
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
		}
	})
	if _, err := v.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &o.Bucket}); err != nil {
		v.Close()
		if unreachable(err) {
			// An endpoint down is a missing disk, not a mistake: the
			// server starts without the volume and reports it.
			return nil, keepstore.MissingVolume(v.fail("reaching the bucket", "", err))
		}
		return nil, v.fail("reaching the bucket", "", err)
	}
	if v.uuid, err = v.readUUID(ctx); err != nil {
		v.Close()
		return nil, err
	}
	if err := v.count(ctx); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// Close releases the volume's idle connections.
func (v *Volume) Close() error {
	if v.ownHTTP {
		v.httpC.CloseIdleConnections()
	}
	return nil
}

// UUID returns the volume's uuid, kept in the bucket (PREFIX+keep-volume-uuid)
// or given in Options.UUID.
func (v *Volume) UUID() string { return v.uuid }

// DeviceID names the bucket and prefix at their endpoint, the same from
// every server, so that keep-balance can tell one bucket listed under two
// volume uuids.
func (v *Volume) DeviceID() string { return v.location }

// String describes the volume for messages: bucket, prefix and endpoint.
func (v *Volume) String() string { return v.location }

// rel returns the key of a block below the prefix.
func (v *Volume) rel(hash string) string {
	if p := v.opts.PrefixLength; p > 0 {
		return hash[:p] + "/" + hash
	}
	return hash
}

func (v *Volume) dataKey(hash string) string   { return v.opts.Prefix + v.rel(hash) }
func (v *Volume) recentKey(hash string) string { return v.opts.Prefix + "recent/" + v.rel(hash) }
func (v *Volume) trashKey(hash string) string  { return v.opts.Prefix + "trash/" + v.rel(hash) }

// checkHash refuses names that are not block hashes before they become
// object keys.
func checkHash(hash string) error {
	if err := locator.ParseHash(hash); err != nil {
		return fmt.Errorf("invalid hash %q", hash)
	}
	return nil
}

// Open implements keepstore.Volume.
func (v *Volume) Open(ctx context.Context, hash string) (io.ReadCloser, int64, error) {
	if err := checkHash(hash); err != nil {
		return nil, 0, err
	}
	key := v.dataKey(hash)
	out, err := v.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &v.opts.Bucket, Key: &key})
	if err != nil {
		return nil, 0, v.fail("reading", key, err)
	}
	size := aws.ToInt64(out.ContentLength)
	if size < 0 || size > locator.MaxBlockSize {
		out.Body.Close()
		return nil, 0, fmt.Errorf("S3 volume %s: object %s claims %d bytes", v.location, key, size)
	}
	return out.Body, size, nil
}

// Stat implements keepstore.Volume.
func (v *Volume) Stat(ctx context.Context, hash string) (keepstore.BlockInfo, error) {
	if err := checkHash(hash); err != nil {
		return keepstore.BlockInfo{}, err
	}
	key := v.dataKey(hash)
	out, err := v.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &v.opts.Bucket, Key: &key})
	if err != nil {
		return keepstore.BlockInfo{}, v.fail("looking up", key, err)
	}
	mtime, err := v.mtime(ctx, hash, aws.ToTime(out.LastModified))
	if err != nil {
		return keepstore.BlockInfo{}, err
	}
	return keepstore.BlockInfo{Hash: hash, Size: aws.ToInt64(out.ContentLength), Mtime: mtime}, nil
}

// mtime returns the block's modification time: its recent/ object's,
// or, when it has none, the data object's (given).
func (v *Volume) mtime(ctx context.Context, hash string, data time.Time) (time.Time, error) {
	key := v.recentKey(hash)
	out, err := v.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &v.opts.Bucket, Key: &key})
	switch err := v.fail("looking up", key, err); {
	case err == nil:
		return seconds(aws.ToTime(out.LastModified)), nil
	case errors.Is(err, keepstore.ErrNotFound):
		return seconds(data), nil
	default:
		return time.Time{}, err
	}
}

// seconds drops what S3's Last-Modified header cannot carry, so that a
// time from a listing equals the same time from a HEAD.
func seconds(t time.Time) time.Time { return t.Truncate(time.Second) }

// Touch implements keepstore.Volume.
func (v *Volume) Touch(ctx context.Context, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if v.opts.ReadOnly {
		return keepstore.ErrReadOnly
	}
	// Under the block's lock, so that a Trash that has checked the
	// mtime cannot delete the block after the touch.
	defer v.lock(hash)()
	if _, err := v.exists(ctx, hash); err != nil {
		return err
	}
	return v.writeRecent(ctx, hash)
}

// exists looks up the data object of hash: its size, or an error
// wrapping ErrNotFound.
func (v *Volume) exists(ctx context.Context, hash string) (int64, error) {
	key := v.dataKey(hash)
	out, err := v.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &v.opts.Bucket, Key: &key})
	if err != nil {
		return 0, v.fail("looking up", key, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

// writeRecent writes the block's recent/ marker: now is its mtime.
func (v *Volume) writeRecent(ctx context.Context, hash string) error {
	key := v.recentKey(hash)
	_, err := v.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &v.opts.Bucket, Key: &key, Body: bytes.NewReader(nil), ContentLength: aws.Int64(0)})
	return v.fail("writing", key, err)
}

// Put implements keepstore.Volume. A body of known size streams to the
// store; one of unknown size (-1) is read whole first, up to 64 MiB.
func (v *Volume) Put(ctx context.Context, hash string, r io.Reader, size int64) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if v.opts.ReadOnly {
		return keepstore.ErrReadOnly
	}
	sum, _ := hex.DecodeString(hash)
	contentMD5 := base64.StdEncoding.EncodeToString(sum)
	var body io.Reader
	var exact *exactReader
	if size < 0 {
		data, err := io.ReadAll(io.LimitReader(r, locator.MaxBlockSize+1))
		if err != nil {
			return fmt.Errorf("writing block %s: %w", hash, err)
		}
		if len(data) > locator.MaxBlockSize {
			return fmt.Errorf("writing block %s: over %d bytes", hash, locator.MaxBlockSize)
		}
		body, size = bytes.NewReader(data), int64(len(data))
	} else {
		exact = &exactReader{r: r, left: size}
		body = exact
	}
	if err := v.counts.reserve(v.opts.Capacity, size); err != nil {
		return err
	}
	defer v.counts.release(size)
	defer v.lock(hash)()
	_, err := v.exists(ctx, hash)
	if err != nil && !isNotFound(err) {
		return err
	}
	existed := err == nil
	var added int64
	if !existed {
		added = 1
	}
	v.counts.begin(hash)
	stored := false
	defer func() {
		if stored {
			v.counts.end(hash, added*size, added)
		} else {
			v.counts.end(hash, 0, 0)
		}
	}()
	key := v.dataKey(hash)
	_, err = v.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &v.opts.Bucket, Key: &key, Body: body, ContentLength: aws.Int64(size), ContentMD5: &contentMD5,
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	if err != nil {
		if exact != nil && exact.err != nil {
			return fmt.Errorf("writing block %s: %w", hash, exact.err)
		}
		return v.fail("writing", key, err)
	}
	if exact != nil && exact.err != nil {
		return fmt.Errorf("writing block %s: %w", hash, exact.err)
	}
	// The block is stored whole from here on, whatever the marker's fate.
	stored = true
	return v.writeRecent(ctx, hash)
}

// exactReader delivers exactly left bytes of r, then io.EOF. It fails
// the read that would complete the body, so that the store never
// receives it whole, if r ends short or has more.
type exactReader struct {
	r    io.Reader
	left int64
	err  error // why the body was refused
}

var errTooLong = errors.New("body longer than the declared size")

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = io.ErrUnexpectedEOF
		return 0, e.err
	case err != nil && err != io.EOF:
		e.err = err
		return 0, err
	case e.left == 0:
		// The last bytes: deliver them only if r ends here.
		var one [1]byte
		for {
			m, err := e.r.Read(one[:])
			if m > 0 {
				e.err = errTooLong
				return 0, e.err
			}
			if err == io.EOF {
				return n, nil
			}
			if err != nil {
				e.err = err
				return 0, err
			}
		}
	}
	return n, nil
}

// Usage implements keepstore.Volume. It asks the store nothing: the
// counts come from the listing at Open, or from the last Index of all
// blocks or of one hex digit's that no write of ours overlapped (see
// counts), plus this volume's writes, trashing and untrashing since.
// Changes made by others (a second server on the bucket) show after the
// next such Index. FreeBytes is unknown (-1): S3 has no such figure.
func (v *Volume) Usage(ctx context.Context) (keepstore.Usage, error) {
	return v.counts.usage(v.opts.Capacity), nil
}

// fail maps an S3 error on key to the keepstore errors: a missing
// object is ErrNotFound, a full store ErrFull; anything else (the store
// unreachable, failing, refusing) is returned as it is, which the server
// answers with a retryable 503.
func (v *Volume) fail(what, key string, err error) error {
	if err == nil {
		return nil
	}
	where := fmt.Sprintf("S3 volume %s: %s %s", v.location, what, key)
	if key == "" {
		where = fmt.Sprintf("S3 volume %s: %s", v.location, what)
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var code interface{ ErrorCode() string }
	var status interface{ HTTPStatusCode() int }
	switch {
	case errors.As(err, &nsk), errors.As(err, &nf):
		return fmt.Errorf("%w: %s", keepstore.ErrNotFound, where)
	case errors.As(err, &code) && isFullCode(code.ErrorCode()):
		return fmt.Errorf("%w: %s: %v", keepstore.ErrFull, where, err)
	case errors.As(err, &status) && status.HTTPStatusCode() == http.StatusNotFound && !strings.Contains(err.Error(), "NoSuchBucket"):
		return fmt.Errorf("%w: %s", keepstore.ErrNotFound, where)
	case errors.As(err, &status) && status.HTTPStatusCode() == http.StatusInsufficientStorage:
		return fmt.Errorf("%w: %s: %v", keepstore.ErrFull, where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// unreachable reports whether err from a request means the store did
// not answer (a network error: connection refused, no route, timeout)
// or answered that it is failing (a 5xx status), rather than refusing
// the request as configured (no such bucket, access denied).
func unreachable(err error) bool {
	var ne net.Error
	var status interface{ HTTPStatusCode() int }
	switch {
	case errors.As(err, &status) && status.HTTPStatusCode() != 0: // 0: no answer
		return status.HTTPStatusCode() >= 500
	case errors.As(err, &ne):
		return true
	}
	return false
}

// isFullCode reports whether an S3 error code means the store is full.
func isFullCode(c string) bool {
	switch c {
	case "QuotaExceeded", "XMinioStorageFull", "StorageFull", "InsufficientStorage":
		return true
	}
	return false
}

// deadlineOf returns a trash object's deadline: its metadata, or its
// LastModified plus the trash lifetime when it has none (Arvados').
func (v *Volume) deadlineOf(meta map[string]string, modified time.Time) time.Time {
	if s, ok := meta[trashDeadlineMeta]; ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0)
		}
	}
	return modified.Add(v.opts.TrashLifetime)
}
