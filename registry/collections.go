package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Collection is one collection as the registry keeps it.
type Collection struct {
	UUID        string
	Name        string
	Description string
	// Properties is a JSON object, "{}" when there are none.
	Properties string
	// ManifestText is normalized and holds no permission signatures:
	// they are added for each reader when it is read.
	ManifestText     string
	PortableDataHash string
	// ReplicationDesired is the copies wanted of every block, or nil for
	// the cluster's default.
	ReplicationDesired    *int
	StorageClassesDesired []string
	CreatedAt, ModifiedAt time.Time
	// ModifiedBy names the token that last changed the collection.
	ModifiedBy string
	// TrashAt is when the collection goes (or went) to the trash, and
	// DeleteAt when it is deleted for good; nil for never.
	TrashAt, DeleteAt *time.Time
}

// IsTrashed reports whether c is in the trash at now.
func (c *Collection) IsTrashed(now time.Time) bool {
	return c.TrashAt != nil && !c.TrashAt.After(now)
}

// Errors callers branch on.
var (
	// ErrNotFound: no collection has that uuid (or it was deleted).
	ErrNotFound = errors.New("collection not found")
	// ErrNameTaken: another collection not in the trash has that name.
	ErrNameTaken = errors.New("a collection of that name exists")
)

// columns are the collections table's columns, in scan order.
const columns = `uuid, name, description, properties, manifest_text, portable_data_hash, replication_desired, storage_classes_desired, created_at, modified_at, modified_by, trash_at, delete_at`

func scanCollection(r interface{ Scan(...any) error }) (Collection, error) {
	var c Collection
	var repl, trash, del sql.NullInt64
	var classes string
	var created, modified int64
	err := r.Scan(&c.UUID, &c.Name, &c.Description, &c.Properties, &c.ManifestText, &c.PortableDataHash,
		&repl, &classes, &created, &modified, &c.ModifiedBy, &trash, &del)
	if err != nil {
		return Collection{}, err
	}
	if repl.Valid {
		n := int(repl.Int64)
		c.ReplicationDesired = &n
	}
	if err := json.Unmarshal([]byte(classes), &c.StorageClassesDesired); err != nil {
		return Collection{}, fmt.Errorf("collection %s: stored storage classes %q: %w", c.UUID, classes, err)
	}
	c.CreatedAt = time.UnixMicro(created).UTC()
	c.ModifiedAt = time.UnixMicro(modified).UTC()
	c.TrashAt = fromMicros(trash)
	c.DeleteAt = fromMicros(del)
	return c, nil
}

func fromMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

func toMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func (c *Collection) values() []any {
	var repl any
	if c.ReplicationDesired != nil {
		repl = *c.ReplicationDesired
	}
	classes, _ := json.Marshal(c.StorageClassesDesired)
	return []any{c.UUID, c.Name, c.Description, c.Properties, c.ManifestText, c.PortableDataHash,
		repl, string(classes), c.CreatedAt.UnixMicro(), c.ModifiedAt.UnixMicro(), c.ModifiedBy,
		toMicros(c.TrashAt), toMicros(c.DeleteAt)}
}

// Create adds c, which must be complete (see Prepare).
func (s *Store) Create(ctx context.Context, c Collection) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO collections (`+columns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), c.values()...)
	if isUniqueViolation(err) {
		return fmt.Errorf("collection %q: %w", c.Name, ErrNameTaken)
	}
	if err != nil {
		return fmt.Errorf("adding collection %s to the %s: %w", c.UUID, s.desc, err)
	}
	return nil
}

// Get returns the collection with uuid, in the trash or not.
func (s *Store) Get(ctx context.Context, uuid string) (Collection, error) {
	c, err := scanCollection(s.db.QueryRowContext(ctx, s.q(`SELECT `+columns+` FROM collections WHERE uuid = ?`), uuid))
	if errors.Is(err, sql.ErrNoRows) {
		return Collection{}, fmt.Errorf("%s: %w", uuid, ErrNotFound)
	}
	if err != nil {
		return Collection{}, fmt.Errorf("reading collection %s from the %s: %w", uuid, s.desc, err)
	}
	return c, nil
}

// GetByPDH returns the most recently changed collection not in the
// trash at now whose portable data hash is pdh.
func (s *Store) GetByPDH(ctx context.Context, pdh string, now time.Time) (Collection, error) {
	c, err := scanCollection(s.db.QueryRowContext(ctx, s.q(`SELECT `+columns+` FROM collections
		WHERE portable_data_hash = ? AND (trash_at IS NULL OR trash_at > ?)
		ORDER BY modified_at DESC, uuid LIMIT 1`), pdh, now.UnixMicro()))
	if errors.Is(err, sql.ErrNoRows) {
		return Collection{}, fmt.Errorf("%s: %w", pdh, ErrNotFound)
	}
	if err != nil {
		return Collection{}, fmt.Errorf("reading collection %s from the %s: %w", pdh, s.desc, err)
	}
	return c, nil
}

// Update changes the collection with uuid by calling change on it, in
// one transaction, and returns it as stored. change must leave the uuid
// and creation time alone.
func (s *Store) Update(ctx context.Context, uuid string, change func(*Collection) error) (Collection, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Collection{}, fmt.Errorf("updating collection %s in the %s: %w", uuid, s.desc, err)
	}
	defer tx.Rollback()
	q := `SELECT ` + columns + ` FROM collections WHERE uuid = ?`
	if s.dialect.numbered {
		q += " FOR UPDATE"
	}
	c, err := scanCollection(tx.QueryRowContext(ctx, s.q(q), uuid))
	if errors.Is(err, sql.ErrNoRows) {
		return Collection{}, fmt.Errorf("%s: %w", uuid, ErrNotFound)
	}
	if err != nil {
		return Collection{}, fmt.Errorf("reading collection %s from the %s: %w", uuid, s.desc, err)
	}
	if err := change(&c); err != nil {
		return Collection{}, err
	}
	if c.UUID != uuid {
		return Collection{}, fmt.Errorf("collection %s: the uuid cannot change", uuid)
	}
	v := c.values()
	set := strings.Split(columns, ", ")[1:]
	for i := range set {
		set[i] += " = ?"
	}
	args := append(v[1:], uuid)
	_, err = tx.ExecContext(ctx, s.q(`UPDATE collections SET `+strings.Join(set, ", ")+` WHERE uuid = ?`), args...)
	if isUniqueViolation(err) {
		return Collection{}, fmt.Errorf("collection %q: %w", c.Name, ErrNameTaken)
	}
	if err != nil {
		return Collection{}, fmt.Errorf("updating collection %s in the %s: %w", uuid, s.desc, err)
	}
	if err := tx.Commit(); err != nil {
		return Collection{}, fmt.Errorf("updating collection %s in the %s: %w", uuid, s.desc, err)
	}
	return c, nil
}

// DeleteExpired deletes for good the collections whose delete_at has
// come, and returns how many.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM collections WHERE delete_at IS NOT NULL AND delete_at <= ?`), now.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("deleting expired collections from the %s: %w", s.desc, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// List returns the collections q selects, and (if q.Count) how many it
// would select without its limit and offset.
func (s *Store) List(ctx context.Context, q Query, now time.Time) ([]Collection, int, error) {
	where, args, err := q.where(now)
	if err != nil {
		return nil, 0, err
	}
	total := -1
	if q.Count {
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM collections`+where), args...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("counting collections in the %s: %w", s.desc, err)
		}
	}
	if q.Limit == 0 {
		return nil, total, nil
	}
	query := `SELECT ` + columns + ` FROM collections` + where + q.orderBy() + ` LIMIT ? OFFSET ?`
	rows, err := s.db.QueryContext(ctx, s.q(query), append(args, q.Limit, q.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing collections in the %s: %w", s.desc, err)
	}
	defer rows.Close()
	var out []Collection
	for rows.Next() {
		c, err := scanCollection(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("listing collections in the %s: %w", s.desc, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("listing collections in the %s: %w", s.desc, err)
	}
	return out, total, nil
}
