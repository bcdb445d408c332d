// Package pgshared keeps the x5u certificate cache of a cluster in
// PostgreSQL: the x5u.Shared tier that makes a URL one fetch for all the
// nodes while its entry is fresh. It lives outside core so that core
// carries no database driver; cmd/stirgate wires it from [x5u] shared_dsn.
//
// Single flight across nodes is a transaction-scoped advisory lock on the
// URL's hash: the first node to miss takes it, finds no fresh row, fetches
// and writes the row before committing; the others wait on the lock and
// then find the row. A node that dies mid-fetch drops its connection and
// with it the lock, so nothing is left claimed.
package pgshared

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Defaults for zero Options fields.
const (
	DefaultMaxEntries = 5000
	DefaultMaxConns   = 16
)

// Options configures a Cache; only DSN is required.
type Options struct {
	// DSN is the PostgreSQL connection string.
	DSN string
	// MaxEntries bounds the rows kept (default 5000): any INVITE can name
	// an x5u URL, so the table must not grow with a flood of them. Beyond
	// it the rows least recently written are removed.
	MaxEntries int
	// MaxConns bounds the connections of this node (default 16); a miss
	// holds one for the duration of its fetch, and misses beyond it wait
	// for one within the x5u Cache's Timeout. Several nodes share the
	// server's max_connections (100 by default): keep nodes × MaxConns
	// below it, beside the outcome store's connections.
	MaxConns int
}

// Cache is an x5u.Shared on PostgreSQL. Safe for concurrent use.
type Cache struct {
	db         *sql.DB
	maxEntries int
}

const schema = `CREATE TABLE IF NOT EXISTS x5u_cache (
	url     TEXT PRIMARY KEY,
	body    BYTEA NOT NULL,
	fetched TIMESTAMPTZ NOT NULL,
	expires TIMESTAMPTZ NOT NULL
)`

// lockSpace keeps our advisory lock keys apart from any other user of
// the database's advisory locks (the two-key form).
const lockSpace = 0x5735

// Open connects and creates the table if needed.
func Open(ctx context.Context, o Options) (*Cache, error) {
	if o.DSN == "" {
		return nil, errors.New("pgshared: no DSN")
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxEntries < 0 || o.MaxConns < 0 {
		return nil, errors.New("pgshared: negative MaxEntries or MaxConns")
	}
	db, err := sql.Open("pgx", o.DSN)
	if err != nil {
		return nil, fmt.Errorf("pgshared: %w", err)
	}
	db.SetMaxOpenConns(o.MaxConns)
	// Two nodes creating the table at once would race on the catalog:
	// serialise them on a lock of their own.
	err = func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockSpace); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return err
		}
		return tx.Commit()
	}()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("pgshared: schema: %w", err)
	}
	return &Cache{db: db, maxEntries: o.MaxEntries}, nil
}

// Close closes the connections.
func (c *Cache) Close() error { return c.db.Close() }

// lockKey is the URL's advisory lock key: 32 bits of its SHA-256. Two
// URLs that collide merely wait for each other's fetch.
func lockKey(url string) int32 {
	sum := sha256.Sum256([]byte(url))
	return int32(binary.BigEndian.Uint32(sum[:4]))
}

// Do implements x5u.Shared. The lock is held, and a connection with it,
// for the duration of fetch, which the x5u Cache bounds by its Timeout.
func (c *Cache) Do(ctx context.Context, url string, now time.Time, fetch func(context.Context) ([]byte, time.Time, error)) (body []byte, expires time.Time, fromShared bool, err error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("pgshared: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockSpace, lockKey(url)); err != nil {
		return nil, time.Time{}, false, fmt.Errorf("pgshared: lock: %w", err)
	}
	err = tx.QueryRowContext(ctx, `SELECT body, expires FROM x5u_cache WHERE url = $1 AND expires > $2`, url, now).Scan(&body, &expires)
	switch {
	case err == nil:
		return body, expires, true, tx.Commit()
	case !errors.Is(err, sql.ErrNoRows):
		return nil, time.Time{}, false, fmt.Errorf("pgshared: read: %w", err)
	}
	body, expires, err = fetch(ctx)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO x5u_cache (url, body, fetched, expires) VALUES ($1, $2, $3, $4)
		ON CONFLICT (url) DO UPDATE SET body = excluded.body, fetched = excluded.fetched, expires = excluded.expires`,
		url, body, now, expires); err != nil {
		return body, expires, false, fmt.Errorf("pgshared: write: %w", err)
	}
	// Keep the table bounded: expired rows go, then the oldest beyond
	// MaxEntries. Paid per fetch, which the x5u Cache already bounds.
	if _, err := tx.ExecContext(ctx, `DELETE FROM x5u_cache WHERE expires <= $1`, now); err != nil {
		return body, expires, false, fmt.Errorf("pgshared: trim: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM x5u_cache WHERE url IN (
		SELECT url FROM x5u_cache ORDER BY fetched DESC, url OFFSET $1)`, c.maxEntries); err != nil {
		return body, expires, false, fmt.Errorf("pgshared: trim: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return body, expires, false, fmt.Errorf("pgshared: commit: %w", err)
	}
	return body, expires, false, nil
}
