package s3volume

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Options configures an S3 volume. Bucket is required; the rest have
// defaults. The names follow the DriverParameters of Arvados' S3 volumes
// where there is one.
type Options struct {
	// Bucket holds the blocks.
	Bucket string
	// Prefix, if set, starts every key of the volume (say "keep/"), so
	// that several volumes can share a bucket. Arvados has none.
	Prefix string
	// Endpoint is the store's URL, such as https://s3.example.com, or
	// unix:///path/to/socket for a local server on a Unix socket; empty
	// means AWS. Keys are always addressed path-style (UsePathStyle).
	Endpoint string
	// Region is the store's region; empty means us-east-1.
	Region string
	// AccessKeyID and SecretAccessKey are the credentials. When both
	// are empty, CredentialsFile is read, else the AWS environment
	// variables and shared configuration (~/.aws).
	AccessKeyID, SecretAccessKey string
	// CredentialsFile holds the access key id and the secret, separated
	// by white space (a line each, say).
	CredentialsFile string
	// PrefixLength puts a block under HASH[:PrefixLength]/HASH; 0 means
	// HASH. Arvados clusters made since 2.2 usually use 3.
	PrefixLength int
	// ReadOnly refuses writes, touches and trash without asking the
	// store.
	ReadOnly bool
	// Capacity limits the bytes of blocks the server stores here; 0
	// means none.
	Capacity int64
	// TrashLifetime is when trash written by Arvados, which records no
	// deadline, is due after it was trashed; 0 means 336 hours
	// (Collections.BlobTrashLifetime's default).
	TrashLifetime time.Duration
	// RaceWindow guards trash written by Arvados, which records no
	// mtime for EmptyTrash's race check: such a copy whose block's
	// recent/ marker is within RaceWindow before the trashing, and
	// whose block is missing, is restored rather than deleted. 0 means
	// 24 hours, as Arvados; negative turns the guard off. Trash of ours
	// needs no window (see EmptyTrash).
	RaceWindow time.Duration
	// IndexPageSize is how many keys each listing request asks for;
	// 0 means 1000, the most S3 returns.
	IndexPageSize int
	// IndexConcurrency is how many listing requests an Index (and the
	// count at Open) may have in flight at once: a listing that does
	// not fit in one page is split by hash prefix into parts of about
	// two pages each, listed that many at a time and passed on in hash
	// order. 0 means 16; 1 lists one page at a time, as Arvados does.
	IndexConcurrency int
	// ConnectTimeout and ReadTimeout bound the TLS handshake and the wait
	// for a response's headers; 0 means 1 minute and 10 minutes.
	ConnectTimeout, ReadTimeout time.Duration
	// UUID names the volume; empty means the one kept in the bucket
	// (created on first open of a writable volume).
	UUID string
	// HTTPClient, if set, carries the requests (tests use it to reach a
	// server on a Unix socket).
	HTTPClient *http.Client
}

// String describes the volume without its credentials.
func (o Options) String() string {
	where := "AWS"
	if o.Endpoint != "" {
		where = o.Endpoint
	}
	return fmt.Sprintf("s3://%s/%s at %s", o.Bucket, o.Prefix, where)
}

func (o *Options) check() error {
	switch {
	case o.Bucket == "":
		return errors.New("S3 volume: no bucket given")
	case o.PrefixLength < 0 || o.PrefixLength > 32:
		return fmt.Errorf("S3 volume %s: prefix length %d is not between 0 and 32", o, o.PrefixLength)
	case o.IndexPageSize < 0 || o.IndexPageSize > 1000:
		return fmt.Errorf("S3 volume %s: index page size %d is not between 1 and 1000", o, o.IndexPageSize)
	case o.IndexConcurrency < 0:
		return fmt.Errorf("S3 volume %s: negative index concurrency", o)
	case o.Capacity < 0:
		return fmt.Errorf("S3 volume %s: negative capacity", o)
	case o.Prefix != "" && !strings.HasSuffix(o.Prefix, "/"):
		o.Prefix += "/"
	}
	if o.IndexPageSize == 0 {
		o.IndexPageSize = 1000
	}
	if o.IndexConcurrency == 0 {
		o.IndexConcurrency = 16
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.TrashLifetime == 0 {
		o.TrashLifetime = 336 * time.Hour
	}
	if o.RaceWindow == 0 {
		o.RaceWindow = 24 * time.Hour
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = time.Minute
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 10 * time.Minute
	}
	return nil
}

// awsConfig resolves the credentials and settings of the SDK.
func (o Options) awsConfig(ctx context.Context) (aws.Config, error) {
	ak, sk := o.AccessKeyID, o.SecretAccessKey
	if ak == "" && sk == "" && o.CredentialsFile != "" {
		b, err := os.ReadFile(o.CredentialsFile)
		if err != nil {
			return aws.Config{}, fmt.Errorf("S3 volume %s: reading its credentials: %w", o, err)
		}
		f := strings.Fields(string(b))
		if len(f) != 2 {
			return aws.Config{}, fmt.Errorf("S3 volume %s: %s should hold an access key id and a secret, and holds %d words", o, o.CredentialsFile, len(f))
		}
		ak, sk = f[0], f[1]
	}
	var cfg aws.Config
	if ak != "" || sk != "" {
		cfg = aws.Config{Region: o.Region, Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")}
	} else {
		var err error
		if cfg, err = config.LoadDefaultConfig(ctx, config.WithRegion(o.Region)); err != nil {
			return aws.Config{}, fmt.Errorf("S3 volume %s: no credentials given, and the AWS configuration could not be read: %w", o, err)
		}
	}
	// One retry for a store's passing hiccup; beyond that the server
	// answers 503 and the client tries elsewhere.
	cfg.Retryer = func() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 2) }
	// Content-MD5 is the integrity check; the SDK's own trailing
	// checksums are not understood by every S3 server.
	cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	return cfg, nil
}

// ParseURL reads a volume flag of the form
//
//	s3://BUCKET[/PREFIX]?endpoint=URL&region=R&prefix_length=N&credentials_file=F&read_only=true&uuid=U
//
// Credentials never go in the URL: they come from credentials_file, or
// the AWS environment and shared configuration.
func ParseURL(s string) (Options, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return Options{}, fmt.Errorf("S3 volume %q: want s3://BUCKET[/PREFIX]?endpoint=URL&region=R", s)
	}
	if u.User != nil {
		return Options{}, fmt.Errorf("S3 volume s3://%s: credentials do not belong in the URL; use credentials_file= or the AWS environment", u.Host)
	}
	o := Options{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/")}
	for k, vs := range u.Query() {
		val := vs[len(vs)-1]
		switch k {
		case "endpoint":
			e, err := url.Parse(val)
			if err != nil || !(e.Scheme == "http" || e.Scheme == "https") && !(e.Scheme == "unix" && e.Path != "") || e.Scheme != "unix" && e.Host == "" {
				return Options{}, fmt.Errorf("S3 volume %q: endpoint %q is not an http, https or unix (socket) URL", s, val)
			}
			o.Endpoint = val
		case "region":
			o.Region = val
		case "prefix_length":
			if o.PrefixLength, err = strconv.Atoi(val); err != nil {
				return Options{}, fmt.Errorf("S3 volume %q: prefix_length %q is not a number", s, val)
			}
		case "credentials_file":
			o.CredentialsFile = val
		case "read_only":
			if o.ReadOnly, err = strconv.ParseBool(val); err != nil {
				return Options{}, fmt.Errorf("S3 volume %q: read_only %q is not true or false", s, val)
			}
		case "uuid":
			o.UUID = val
		default:
			return Options{}, fmt.Errorf("S3 volume %q: unknown parameter %q (known: endpoint, region, prefix_length, credentials_file, read_only, uuid)", s, k)
		}
	}
	return o, o.check()
}
