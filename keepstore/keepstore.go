// Package keepstore is a block server speaking the Arvados keepstore
// HTTP protocol: PUT /HASH stores a block, GET and HEAD /LOCATOR read it
// back, GET /index lists blocks, and the management API keep-balance
// drives (GET /mounts, PUT /pull, PUT /trash, untrash, TOUCH, DELETE)
// carries out the rest of a block's life. Blocks live on volumes (see
// Volume), which drivers in packages of their own open (see Driver:
// dirvolume for directories, s3volume for S3 buckets); every block's MD5 is checked as it is streamed
// in and out, a copy found corrupt is moved to the trash, and an upload
// of the right data over a corrupt copy replaces it.
//
// A Server is an http.Handler, so an in-process block server is
//
//	import _ "github.com/keepproject/keep/keepstore/dirvolume" // the driver of directories
//
//	srv, err := keepstore.New(keepstore.Config{Volumes: []keepstore.VolumeConfig{{Path: dir}}})
//	ts := httptest.NewServer(srv)
//
// Differences from Arvados keepstore: PUT requires a token; /index is
// refused (403) when no SystemToken is configured; unknown methods and
// paths answer 400 (as Arvados does, not 405); reads and uploads have
// separate limits (MaxConcurrentRequests, MaxConcurrentWrites), and
// requests over them are refused at once with 503 and Retry-After rather
// than queued; an upload slower than MinUploadRate is cut off with 408;
// DELETE answers a JSON DeleteResult and keeps copies newer than the
// signing TTL; remote-cluster (+R) reads are not implemented.
package keepstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keepproject/keep/internal/apiauth"
	"github.com/keepproject/keep/internal/protocol"
	"github.com/keepproject/keep/locator"
	"golang.org/x/sync/semaphore"
)

// DefaultMaxConcurrentRequests is the request limit when
// Config.MaxConcurrentRequests is 0, as in Arvados.
const DefaultMaxConcurrentRequests = 64

// DefaultMaxConcurrentWrites is the upload limit when
// Config.MaxConcurrentWrites is 0. With DefaultMaxConcurrentRequests it
// bounds the server's block buffers (1 MiB per request) at 128 MiB, the
// Arvados default of 128 MaxKeepBlobBuffers.
const DefaultMaxConcurrentWrites = 64

// DefaultMinUploadRate is the minimum upload rate, in bytes per second,
// when Config.MinUploadRate is 0: 64 KiB/s, half a megabit, so that a
// client on a slow but honest link still stores a full 64 MiB block
// (in at most 17 minutes), while a client trickling its body must send
// at least this much per second to keep a write slot.
const DefaultMinUploadRate = 64 << 10

// DefaultUploadGrace is the waiting an upload may use on top of its
// minimum rate when Config.UploadGrace is 0: enough for a slow start or
// a client pausing before its first bytes.
const DefaultUploadGrace = 10 * time.Second

// Defaults of the block lifecycle settings, as in Arvados.
const (
	// DefaultTrashLifetime is how long a trashed block can be restored
	// (Collections.BlobTrashLifetime).
	DefaultTrashLifetime = 336 * time.Hour
	// DefaultTrashCheckInterval is how often trash past its deadline is
	// deleted (Collections.BlobTrashCheckInterval).
	DefaultTrashCheckInterval = 24 * time.Hour
	// DefaultTrashConcurrency is the number of trash list workers
	// (Collections.BlobTrashConcurrency).
	DefaultTrashConcurrency = 4
	// DefaultPullConcurrency is the number of pull list workers
	// (Collections.BlobReplicateConcurrency).
	DefaultPullConcurrency = 4
)

// DefaultSigningTTL is the permission signature lifetime when
// Config.SigningTTL is 0, as in Arvados (two weeks).
const DefaultSigningTTL = 336 * time.Hour

// DefaultStorageClass is the class of volumes configured without any, and
// the class written when a PUT names none.
const DefaultStorageClass = "default"

// Config configures a Server. Only Volumes is required.
type Config struct {
	// Volumes are the volumes, in no particular order: blocks are placed
	// by rendezvous hashing on the volume IDs.
	Volumes []VolumeConfig
	// SigningKey, if set, signs the locators PUT returns (the Arvados
	// BlobSigningKey).
	SigningKey []byte
	// SigningTTL is the signature lifetime; 0 means DefaultSigningTTL.
	SigningTTL time.Duration
	// RequireSignatures makes GET and HEAD require a valid signature for
	// the request's token. It needs SigningKey.
	RequireSignatures bool
	// SystemToken is the token of the management API: block listings
	// (/index, /mounts), the pull and trash lists, TOUCH, DELETE and
	// untrash (Arvados: SystemRootToken). Empty means nobody may use it.
	SystemToken string
	// ManagementToken opens /metrics, /_status and /_health/*
	// (Arvados: ManagementToken): 401 without it, 403 with another
	// token. Empty means those routes answer 404.
	ManagementToken string
	// DisableTrash refuses DELETE (405) and skips the items of trash
	// lists (Arvados: Collections.BlobTrash: false).
	DisableTrash bool
	// TrashLifetime is how long a trashed block can be restored before
	// the sweep deletes it (Arvados: Collections.BlobTrashLifetime). 0
	// means DefaultTrashLifetime; negative means trashing deletes at
	// once (Arvados: 0).
	TrashLifetime time.Duration
	// TrashCheckInterval is how often the sweep deletes trash past its
	// deadline and temporary files left by crashes (Arvados:
	// Collections.BlobTrashCheckInterval). 0 means
	// DefaultTrashCheckInterval; negative means never.
	TrashCheckInterval time.Duration
	// TrashConcurrency and PullConcurrency are the numbers of workers
	// carrying out the trash and pull lists. 0 means
	// DefaultTrashConcurrency and DefaultPullConcurrency.
	TrashConcurrency, PullConcurrency int
	// PullClient fetches blocks for the pull list; nil means a client
	// with a 10 minute timeout per block.
	PullClient *http.Client
	// MaxConcurrentRequests limits the reads (GET and HEAD of blocks)
	// and index listings served at once; further ones get 503 with
	// Retry-After. Uploads do not count against it, so uploads waiting
	// for their bodies never starve reads. 0 means
	// DefaultMaxConcurrentRequests.
	MaxConcurrentRequests int
	// MaxConcurrentWrites limits the uploads (PUT) served at once. When
	// every write slot is taken, a new PUT takes the slot of the upload
	// furthest behind MinUploadRate (by at least a second, grace aside),
	// which is cut off with 408; if none is behind, the new PUT gets 503
	// with Retry-After. 0 means DefaultMaxConcurrentWrites.
	MaxConcurrentWrites int
	// MinUploadRate is the slowest a PUT body may arrive, in bytes per
	// second: the time the server spends waiting for body bytes may not
	// exceed UploadGrace plus one second per MinUploadRate bytes
	// received. An upload that falls behind is answered 408 and its
	// connection closed, so nothing is stored; a 64 MiB body may hold a
	// write slot for at most UploadGrace + 64 MiB / MinUploadRate. Time
	// the server spends writing to its volumes does not count. 0 means
	// DefaultMinUploadRate; negative means no minimum (and no eviction).
	MinUploadRate int64
	// UploadGrace is the waiting for body bytes allowed on top of
	// MinUploadRate. 0 means DefaultUploadGrace.
	UploadGrace time.Duration
	// Logger receives one line per request and any errors; nil means
	// slog.Default().
	Logger *slog.Logger
	// TokenChecker, if set, says what each token may do (an
	// *apiauth.Checker asking the token registry): reading blocks (GET,
	// HEAD) then needs a token of scope read, writing them (PUT) one of
	// scope write; a token the registry does not know gets 401, one
	// whose scope is too small 403, and 502 when the registry cannot
	// say. The SystemToken is not asked about and may do everything
	// (pulls between servers use it); the routes that need the
	// SystemToken or the ManagementToken keep their rules. Nil means
	// any token may write, and reads need only what RequireSignatures
	// asks.
	TokenChecker TokenChecker
}

// TokenChecker says what a token may do. *apiauth.Checker is one. An
// error means it could not say; its text must not hold the token.
type TokenChecker interface {
	Check(ctx context.Context, token string) (apiauth.Scope, error)
}

// VolumeConfig configures one volume of a Server.
type VolumeConfig struct {
	// Path is the volume's URL, as keep server --volume takes it: a
	// directory, or a URL of a registered driver's scheme
	// (s3://BUCKET?...), opened by the driver registered for it (see
	// RegisterDriver). With Params or Volume set, it is only a label
	// for logs and status.
	Path string
	// Params, if set, is the volume as its driver read it (ParseVolume,
	// ArvadosVolume), opened in place of Path.
	Params VolumeParams
	// ReadOnly stops the server writing or touching blocks on the volume.
	ReadOnly bool
	// Capacity limits the bytes stored on the volume; 0 means no limit.
	// It is ignored when Volume is set.
	Capacity int64
	// Classes are the volume's storage classes; none means
	// [DefaultStorageClass].
	Classes []string
	// Replication is how many copies the volume's storage itself keeps,
	// reported in X-Keep-Replicas-Stored; 0 means 1.
	Replication int
	// ID names the volume in rendezvous ordering, logs and metrics. Empty
	// means the one the volume keeps (UUIDKeeper: a Directory's
	// keep-volume-uuid file), else one derived from its label; IDs must
	// be unique and stable, or writes go to different volumes after a
	// restart. An ID of the form of an Arvados volume UUID is kept in a
	// volume that keeps none, and a volume keeping another is refused
	// (see VolumeSettings.ID).
	ID string
	// Volume, if set, is used as it is instead of opening one, for
	// fault injection in tests and volumes opened by hand.
	Volume Volume
	// NoSync is VolumeSettings.NoSync, for measurements only; it is
	// ignored when Volume is set.
	NoSync bool
	// Missing, if set, is why a volume opened outside New could not
	// be: an error wrapping ErrVolumeMissing. The server starts without
	// the volume and reports it, as it does one New finds missing.
	Missing error
}

// Server is a keepstore-compatible block server. It implements
// http.Handler and is safe for concurrent use.
type Server struct {
	mounts      []*mount
	missing     []missingVolume // configured, but could not be opened
	signer      locator.Signer
	requireSigs bool
	systemToken string
	mgmtToken   string
	tokens      TokenChecker // nil: no check
	maxRequests int
	maxWrites   int
	minRate     int64 // bytes per second; 0 means no minimum
	grace       time.Duration
	maxBlock    int64               // locator.MaxBlockSize, but tests lower it
	limiter     *semaphore.Weighted // reads and index listings
	writes      *writeSlots
	log         *slog.Logger
	metrics     *metrics
	routes      []route // routeTable

	trashOn          bool
	trashLifetime    time.Duration // 0: delete at once
	trashInterval    time.Duration // 0: never
	trashConcurrency int
	pullConcurrency  int
	pullClient       *http.Client
	trashes          *workList[protocol.TrashItem]
	pulls            *workList[protocol.PullItem]
	stopWorkers      context.CancelFunc
	workers          sync.WaitGroup
}

// mount is a volume as the server uses it.
type mount struct {
	id          string
	path        string
	vol         Volume
	readOnly    bool
	classes     []string // sorted
	replication int
}

// missingVolume is a configured volume the server could not open. As
// an error (from newMount), it is err.
type missingVolume struct {
	id       string // as configured; "" when only the volume knew it
	path     string
	readOnly bool
	err      error // wraps ErrVolumeMissing
}

func (mv *missingVolume) Error() string { return mv.err.Error() }
func (mv *missingVolume) Unwrap() error { return mv.err }

func (m *mount) hasClass(c string) bool {
	_, ok := slices.BinarySearch(m.classes, c)
	return ok
}

// New returns a server for cfg, opening its volumes: NewWithContext
// with a context never cancelled.
func New(cfg Config) (*Server, error) {
	return NewWithContext(context.Background(), cfg)
}

// NewWithContext returns a server for cfg, opening its volumes (those
// without VolumeConfig.Volume) with the drivers registered for them;
// ctx bounds the opening (an S3 volume's listing, say), not the server.
//
// A volume whose storage is missing (its error wraps ErrVolumeMissing:
// a Directory's root does not exist, a bucket's endpoint does not
// answer, or VolumeConfig.Missing is set) is left out, logged, and
// reported in Status, /_health/ping and the metrics; New fails only
// when every volume is missing, or when any volume is configured
// wrongly.
func NewWithContext(ctx context.Context, cfg Config) (*Server, error) {
	if len(cfg.Volumes) == 0 {
		return nil, errors.New("no volumes configured")
	}
	if cfg.RequireSignatures && len(cfg.SigningKey) == 0 {
		return nil, errors.New("signatures are required but no signing key is set")
	}
	if cfg.MaxConcurrentRequests < 0 || cfg.MaxConcurrentWrites < 0 || cfg.SigningTTL < 0 || cfg.UploadGrace < 0 ||
		cfg.TrashConcurrency < 0 || cfg.PullConcurrency < 0 {
		return nil, errors.New("negative request or write limit, signing TTL, upload grace or worker count")
	}
	s := &Server{
		signer:      locator.Signer{Key: cfg.SigningKey, TTL: cfg.SigningTTL},
		requireSigs: cfg.RequireSignatures,
		systemToken: cfg.SystemToken,
		maxRequests: cmp.Or(cfg.MaxConcurrentRequests, DefaultMaxConcurrentRequests),
		maxWrites:   cmp.Or(cfg.MaxConcurrentWrites, DefaultMaxConcurrentWrites),
		minRate:     max(cmp.Or(cfg.MinUploadRate, DefaultMinUploadRate), 0),
		grace:       cmp.Or(cfg.UploadGrace, DefaultUploadGrace),
		maxBlock:    locator.MaxBlockSize,
		log:         cfg.Logger,
		mgmtToken:   cfg.ManagementToken,
		tokens:      cfg.TokenChecker,

		trashOn:          !cfg.DisableTrash,
		trashLifetime:    max(cmp.Or(cfg.TrashLifetime, DefaultTrashLifetime), 0),
		trashInterval:    max(cmp.Or(cfg.TrashCheckInterval, DefaultTrashCheckInterval), 0),
		trashConcurrency: cmp.Or(cfg.TrashConcurrency, DefaultTrashConcurrency),
		pullConcurrency:  cmp.Or(cfg.PullConcurrency, DefaultPullConcurrency),
		pullClient:       cfg.PullClient,
		trashes:          newWorkList(func(it protocol.TrashItem) (string, string) { return it.Locator, it.MountUUID }),
		pulls:            newWorkList(func(it protocol.PullItem) (string, string) { return it.Locator, it.MountUUID }),
	}
	if s.pullClient == nil {
		s.pullClient = &http.Client{Timeout: 10 * time.Minute}
	}
	if s.signer.TTL == 0 {
		s.signer.TTL = DefaultSigningTTL
	}
	s.limiter = semaphore.NewWeighted(int64(s.maxRequests))
	s.writes = newWriteSlots(s.maxWrites, defaultEvictAfter)
	if s.log == nil {
		s.log = slog.Default()
	}
	ids := map[string]bool{}
	for i, vc := range cfg.Volumes {
		m, err := s.newMount(ctx, i, vc)
		var mv *missingVolume
		if errors.As(err, &mv) {
			s.missing = append(s.missing, *mv)
			continue
		}
		if err == nil && ids[m.id] {
			err = fmt.Errorf("volume %d: the volume ID %s is taken by another volume", i, m.id)
			if c, ok := m.vol.(io.Closer); ok && vc.Volume == nil {
				c.Close()
			}
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		ids[m.id] = true
		s.mounts = append(s.mounts, m)
	}
	if len(s.mounts) == 0 {
		errs := make([]error, len(s.missing))
		for i, mv := range s.missing {
			errs[i] = mv.err
		}
		return nil, fmt.Errorf("no volume could be opened: %w", errors.Join(errs...))
	}
	for _, mv := range s.missing {
		attrs := []any{"path", mv.path, "error", mv.err.Error()}
		if mv.id != "" {
			attrs = append(attrs, "volume", mv.id)
		}
		s.log.Error("volume missing: serving the other volumes without it; restart the server once it is back", attrs...)
	}
	s.metrics = newMetrics(s)
	s.routes = s.routeTable()
	s.startWorkers()
	return s, nil
}

// newMount opens volume i, through its driver unless vc.Volume is set.
// A volume found missing is returned as a *missingVolume error; other
// errors name the volume.
func (s *Server) newMount(ctx context.Context, i int, vc VolumeConfig) (*mount, error) {
	if vc.Replication < 0 || vc.Capacity < 0 {
		return nil, fmt.Errorf("volume %d: negative replication or capacity", i)
	}
	if vc.Missing != nil {
		if !errors.Is(vc.Missing, ErrVolumeMissing) {
			return nil, fmt.Errorf("volume %d: %w", i, vc.Missing)
		}
		return nil, &missingVolume{id: vc.ID, path: vc.Path, readOnly: vc.ReadOnly, err: vc.Missing}
	}
	m := &mount{id: vc.ID, path: vc.Path, vol: vc.Volume, readOnly: vc.ReadOnly, replication: max(vc.Replication, 1)}
	for _, c := range vc.Classes {
		if c = strings.TrimSpace(c); c != "" && !slices.Contains(m.classes, c) {
			m.classes = append(m.classes, c)
		}
	}
	if len(m.classes) == 0 {
		m.classes = []string{DefaultStorageClass}
	}
	sort.Strings(m.classes)
	if m.vol == nil {
		if err := s.openVolume(ctx, i, vc, m); err != nil {
			return nil, err
		}
	}
	if u, ok := m.vol.(UUIDKeeper); ok && m.id == "" {
		m.id = u.UUID()
	}
	if m.id == "" {
		if m.path == "" {
			return nil, fmt.Errorf("volume %d: neither an ID nor a path to derive one from", i)
		}
		name := m.path
		if !strings.Contains(name, "://") { // a directory, not a URL
			name, _ = filepath.Abs(name)
		}
		m.id = DerivedVolumeUUID(name)
	}
	return m, nil
}

// openVolume opens the volume vc configures with its driver, filling in
// m's volume, label and read-only flag.
func (s *Server) openVolume(ctx context.Context, i int, vc VolumeConfig, m *mount) error {
	p := vc.Params
	if p == nil {
		if vc.Path == "" {
			return fmt.Errorf("volume %d: no directory or URL given", i)
		}
		var err error
		if p, err = ParseVolume(vc.Path); err != nil {
			return err // it names the volume
		}
	}
	if ro, ok := p.(ReadOnlyParams); ok && ro.ReadOnly() {
		m.readOnly = true
	}
	m.path = p.String()
	v, err := p.Open(ctx, VolumeSettings{ReadOnly: m.readOnly, Capacity: vc.Capacity, TrashLifetime: s.trashLifetime,
		ID: vc.ID, Classes: m.classes, NoSync: vc.NoSync, Logger: s.log})
	switch {
	case errors.Is(err, ErrVolumeMissing) && ctx.Err() == nil:
		return &missingVolume{id: vc.ID, path: m.path, readOnly: m.readOnly, err: err}
	case err != nil:
		return err // it names the volume
	}
	m.vol = v
	if l, ok := v.(fmt.Stringer); ok {
		m.path = l.String()
	}
	return nil
}

// Close stops the pull and trash workers and the trash sweep, and
// releases the volumes that need it (those implementing io.Closer, such
// as a Directory, which holds a lock). Requests still running may fail
// afterwards.
func (s *Server) Close() error {
	if s.stopWorkers != nil {
		s.stop()
	}
	var errs []error
	for _, m := range s.mounts {
		if c, ok := m.vol.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// rendezvous returns ms ordered for block hash: by md5(hash+id)
// ascending, keepstore's own volume order (protocol.SortMounts).
// Spreading blocks this way needs no shared state and moves few blocks
// when volumes change.
func rendezvous(hash string, ms []*mount) []*mount {
	out := slices.Clone(ms)
	protocol.SortMounts(hash, out, func(m *mount) string { return m.id })
	return out
}
