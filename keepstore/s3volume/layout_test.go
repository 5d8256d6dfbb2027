package s3volume_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keepproject/keep/internal/s3test"
	"github.com/keepproject/keep/keepstore"
	"github.com/keepproject/keep/keepstore/s3volume"
	"github.com/keepproject/keep/keepstore/volumetest"
)

func hashOf(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// rawClient returns a plain SDK client of srv, to look at the bucket
// behind the volume's back.
func rawClient(t testing.TB, srv *s3test.Server) *s3.Client {
	hc := srv.HTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	return s3.New(s3.Options{
		Region: srv.Region, BaseEndpoint: aws.String(s3test.Endpoint), UsePathStyle: true, HTTPClient: hc,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
}

func keys(t *testing.T, c *s3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for _, o := range out.Contents {
		ks = append(ks, *o.Key)
	}
	return ks
}

// The keys are Arvados': HASH or HASH[:P]/HASH, recent/ and trash/
// beside them; a bucket written by Arvados is served.
func TestArvadosLayout(t *testing.T) {
	srv := s3test.Start(t)
	raw := rawClient(t, srv)
	data := []byte("arvados layout")
	h := hashOf(data)
	for _, tt := range []struct {
		prefixLength int
		prefix       string
		key          string
	}{
		{0, "", h},
		{3, "", h[:3] + "/" + h},
		{3, "vol1/", "vol1/" + h[:3] + "/" + h},
	} {
		bucket := srv.NewBucket(t)
		v := newVolume(t, srv, s3volume.Options{Bucket: bucket, PrefixLength: tt.prefixLength, Prefix: tt.prefix})
		if err := v.Put(context.Background(), h, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		got := strings.Join(keys(t, raw, bucket), " ")
		recent := tt.prefix + "recent/" + strings.TrimPrefix(tt.key, tt.prefix)
		want := []string{tt.key, recent, tt.prefix + "keep-volume-uuid"}
		for _, w := range want {
			if !strings.Contains(" "+got+" ", " "+w+" ") {
				t.Errorf("prefix length %d, prefix %q: keys %q lack %q", tt.prefixLength, tt.prefix, got, w)
			}
		}
		bi, _ := v.Stat(context.Background(), h)
		if err := v.Trash(context.Background(), h, bi.Mtime, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		trash := tt.prefix + "trash/" + strings.TrimPrefix(tt.key, tt.prefix)
		if got := keys(t, raw, bucket); !contains(got, trash) || contains(got, tt.key) {
			t.Errorf("keys after Trash: %q, want %q and not %q", got, trash, tt.key)
		}
	}

	// A bucket Arvados wrote: a block with no recent/ marker, one with,
	// and a trash object with no deadline of ours (due at its
	// LastModified plus the trash lifetime).
	bucket := srv.NewBucket(t)
	put := func(key string, body []byte) {
		if _, err := raw.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	a, b, old := []byte("written by arvados"), []byte("with a marker"), []byte("trashed by arvados")
	put(hashOf(a)[:3]+"/"+hashOf(a), a)
	put(hashOf(b)[:3]+"/"+hashOf(b), b)
	put("recent/"+hashOf(b)[:3]+"/"+hashOf(b), nil)
	put("trash/"+hashOf(old)[:3]+"/"+hashOf(old), old)
	v := newVolume(t, srv, s3volume.Options{Bucket: bucket, PrefixLength: 3, TrashLifetime: time.Hour})
	for _, d := range [][]byte{a, b} {
		got, err := volumetest.Read(t, v, hashOf(d))
		if err != nil {
			t.Fatalf("reading an Arvados block: %v", err)
		}
		if !bytes.Equal(got, d) {
			t.Errorf("Arvados block read back %q", got)
		}
	}
	var listed []string
	v.Index(context.Background(), "", func(bi keepstore.BlockInfo) error {
		listed = append(listed, bi.Hash)
		return nil
	})
	if len(listed) != 2 {
		t.Errorf("Index of an Arvados bucket lists %v, want the 2 blocks", listed)
	}
	if u, _ := v.Usage(context.Background()); u.Blocks != 2 || u.UsedBytes != int64(len(a)+len(b)) {
		t.Errorf("Usage of an Arvados bucket = %+v", u)
	}
	if n, err := v.EmptyTrash(context.Background(), time.Now()); n != 0 || err != nil {
		t.Errorf("EmptyTrash within Arvados trash's lifetime = %d, %v", n, err)
	}
	if n, err := v.EmptyTrash(context.Background(), time.Now().Add(2*time.Hour)); n != 1 || err != nil {
		t.Errorf("EmptyTrash after Arvados trash's lifetime = %d, %v, want 1", n, err)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// corrupting flips a byte of every PUT body of a block, after the
// volume computed Content-MD5: the store must refuse it.
type corrupting struct{ rt http.RoundTripper }

func (c corrupting) RoundTrip(r *http.Request) (*http.Response, error) {
	// Block uploads only: the volume's uuid, written at open, arrives.
	if r.Method == http.MethodPut && r.ContentLength > 0 && r.Header.Get("X-Amz-Copy-Source") == "" && !strings.HasSuffix(r.URL.Path, "keep-volume-uuid") {
		body, _ := io.ReadAll(r.Body)
		body[0] ^= 1
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return c.rt.RoundTrip(r)
}

// Content-MD5 goes with every upload, so a body corrupted on the way is
// refused by the store and nothing is stored.
func TestContentMD5(t *testing.T) {
	srv := s3test.Start(t)
	hc := srv.HTTPClient()
	defer hc.CloseIdleConnections()
	bucket := srv.NewBucket(t)
	v, err := s3volume.Open(context.Background(), s3volume.Options{
		Bucket: bucket, Endpoint: s3test.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
		HTTPClient: &http.Client{Transport: corrupting{hc.Transport}}, UUID: "zzzzz-nyw5e-000000000000001",
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	data := []byte("corrupted on the way to the store")
	err = v.Put(context.Background(), hashOf(data), bytes.NewReader(data), int64(len(data)))
	if err == nil || errors.Is(err, keepstore.ErrFull) || errors.Is(err, keepstore.ErrNotFound) {
		t.Fatalf("Put of a body corrupted in transit = %v, want a retryable failure", err)
	}
	if !strings.Contains(err.Error(), "BadDigest") {
		t.Errorf("Put of a corrupted body failed other than by the store's digest check: %v", err)
	}
	if ks := keys(t, rawClient(t, srv), bucket); contains(ks, hashOf(data)) {
		t.Errorf("a corrupted body was stored: %v", ks)
	}
}

// The store's own answers reach the volume's callers as keepstore
// errors: a full store (507, QuotaExceeded) is ErrFull, so the server
// answers 507; a failing one (500) is a plain error, answered 503.
func TestStoreErrors(t *testing.T) {
	tests := []struct {
		status int
		code   string
		full   bool
	}{
		{507, "InsufficientStorage", true},
		{403, "QuotaExceeded", true},
		{500, "InternalError", false},
		{503, "SlowDown", false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			var mu sync.Mutex
			failPut := false
			store := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				fail := failPut && r.Method == http.MethodPut
				mu.Unlock()
				switch {
				case fail:
					w.WriteHeader(tt.status)
					fmt.Fprintf(w, `<?xml version="1.0"?><Error><Code>%s</Code><Message>no</Message></Error>`, tt.code)
				case r.Method == http.MethodGet && r.URL.Query().Has("list-type"):
					fmt.Fprint(w, `<?xml version="1.0"?><ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>`)
				case r.Method == http.MethodGet:
					w.WriteHeader(404)
					fmt.Fprint(w, `<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>`)
				case r.Method == http.MethodHead && strings.Count(r.URL.Path, "/") > 1:
					w.WriteHeader(404)
				default:
					w.WriteHeader(200)
				}
			}))
			defer store.Close()
			v, err := s3volume.Open(context.Background(), s3volume.Options{Bucket: "b", Endpoint: store.URL, AccessKeyID: "a", SecretAccessKey: "s", UUID: "zzzzz-nyw5e-000000000000001"})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			mu.Lock()
			failPut = true
			mu.Unlock()
			data := []byte("x")
			err = v.Put(context.Background(), hashOf(data), bytes.NewReader(data), 1)
			if err == nil || errors.Is(err, keepstore.ErrFull) != tt.full {
				t.Errorf("Put answered %d %s: %v, want ErrFull %v", tt.status, tt.code, err, tt.full)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want s3volume.Options
		err  string
	}{
		{in: "s3://bucket", want: s3volume.Options{Bucket: "bucket"}},
		{in: "s3://bucket/keep?endpoint=http://s3.example:9000&region=eu-west-1&prefix_length=3&read_only=true&uuid=zzzzz-nyw5e-000000000000001&credentials_file=/etc/keep/s3",
			want: s3volume.Options{Bucket: "bucket", Prefix: "keep/", Endpoint: "http://s3.example:9000", Region: "eu-west-1", PrefixLength: 3, ReadOnly: true,
				UUID: "zzzzz-nyw5e-000000000000001", CredentialsFile: "/etc/keep/s3"}},
		{in: "s3://key:secret@bucket", err: "credentials do not belong in the URL"},
		{in: "http://bucket", err: "want s3://BUCKET"},
		{in: "s3:///x", err: "want s3://BUCKET"},
		{in: "s3://b?endpoint=ftp://x", err: "not an http, https or unix"},
		{in: "s3://b?endpoint=unix:///tmp/s3.sock", want: s3volume.Options{Bucket: "b", Endpoint: "unix:///tmp/s3.sock"}},
		{in: "s3://b?prefix_length=x", err: "not a number"},
		{in: "s3://b?prefix_length=40", err: "not between 0 and 32"},
		{in: "s3://b?read_only=maybe", err: "not true or false"},
		{in: "s3://b?secret=x", err: "unknown parameter"},
	}
	for _, tt := range tests {
		got, err := s3volume.ParseURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseURL(%q) = %v, want error %q", tt.in, err, tt.err)
			}
			if err != nil && strings.Contains(err.Error(), "secret@") {
				t.Errorf("ParseURL(%q) error shows the secret: %v", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.in, err)
			continue
		}
		if got.IndexConcurrency != 16 {
			t.Errorf("ParseURL(%q) has an IndexConcurrency of %d, want the default, 16", tt.in, got.IndexConcurrency)
		}
		got.TrashLifetime, got.RaceWindow, got.ConnectTimeout, got.ReadTimeout, got.IndexPageSize, got.IndexConcurrency = 0, 0, 0, 0, 0, 0
		if tt.want.Region == "" {
			tt.want.Region = "us-east-1"
		}
		if got != tt.want {
			t.Errorf("ParseURL(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestArvadosOptions(t *testing.T) {
	o, err := s3volume.ArvadosOptions(map[string]any{
		"Bucket": "keep", "Endpoint": "s3.example.com", "Region": "eu-west-1", "AccessKeyID": "ak", "SecretAccessKey": "sk",
		"PrefixLength": 3, "RaceWindow": "2h", "ConnectTimeout": "30s", "UsePathStyle": true, "IndexPageSize": 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.Bucket != "keep" || o.Endpoint != "https://s3.example.com" || o.Region != "eu-west-1" || o.AccessKeyID != "ak" ||
		o.SecretAccessKey != "sk" || o.PrefixLength != 3 || o.RaceWindow != 2*time.Hour || o.ConnectTimeout != 30*time.Second {
		t.Errorf("ArvadosOptions = %+v", o)
	}
	for _, bad := range []map[string]any{
		{},
		{"Bucket": 3},
		{"Bucket": "b", "PrefixLength": "three"},
		{"Bucket": "b", "RaceWindow": "a while"},
	} {
		if _, err := s3volume.ArvadosOptions(bad); err == nil {
			t.Errorf("ArvadosOptions(%v) succeeded", bad)
		}
	}
}
