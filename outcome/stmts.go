package outcome

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
)

// The write path's statements are multi-row, and their text grows with
// the rows. Written with as many rows as a batch happens to have, every
// batch would prepare new statements (SQLite compiles each; pgx describes
// each). Instead a batch is cut into pieces of a few fixed sizes, so that
// the texts repeat, and the statements are prepared once on the *sql.DB
// and reused by every transaction through Tx.StmtContext (database/sql
// keeps a statement prepared per connection).

// pieceSizes are the row counts of the write path's statements, largest
// first. Steps of four keep the set small (five statements per kind)
// while a piece of any length takes at most three statements of each
// size: 300 outcomes are 256+16+16+4+4+4, 7 are 4+1+1+1. 256 rows of
// the widest statement are 7,680 parameters, well under SQLite's 32,766
// and PostgreSQL's 65,535.
var pieceSizes = []int{256, 64, 16, 4, 1}

// maxPiece is the most rows of one statement.
var maxPiece = pieceSizes[0]

// pieces calls f with consecutive [lo, hi) of n rows, each of one of
// pieceSizes, largest first.
func pieces(n int, f func(lo, hi int) error) error {
	lo := 0
	for _, size := range pieceSizes {
		for n-lo >= size {
			if err := f(lo, lo+size); err != nil {
				return err
			}
			lo += size
		}
	}
	return nil
}

// stmtKind is one statement of the write path, whatever its rows.
type stmtKind uint8

const (
	stInsert stmtKind = iota // new rows only; RETURNING uniqueid and facts of those inserted
	stSelect                 // the facts of existing rows, before a merge
	stUpsert                 // the merge; RETURNING the facts after it
	stRollup                 // rollup deltas
	stKinds
)

// stmtKey names one cached statement. A key, not the text: the text of
// 256 rows is kilobytes, better built once than per batch to look it up.
type stmtKey struct {
	kind stmtKind
	rows int
}

// text is the statement with ? placeholders.
func (k stmtKey) text() string {
	switch k.kind {
	case stInsert:
		return upsertHead + tuples(upsertCols, k.rows) + `
	ON CONFLICT (system, uniqueid, kind) DO NOTHING RETURNING uniqueid, ` + factCols
	case stSelect:
		return `SELECT ` + factCols + ` FROM outcomes WHERE (system, uniqueid, kind) IN (VALUES ` + tuples(3, k.rows) + `)`
	case stUpsert:
		return upsertHead + tuples(upsertCols, k.rows) + upsertTail + ` RETURNING ` + factCols
	case stRollup:
		return rollupHead + tuples(rollupWidth, k.rows) + rollupTail
	}
	panic("outcome: unknown statement kind")
}

// stmtCache holds the write path's statements, prepared on the *sql.DB:
// a fixed set, stKinds × len(pieceSizes), so it is bounded by
// construction. The set is prepared whole, outside any transaction (a
// SQLite store has one connection: preparing on the DB inside a
// transaction would wait for it forever), and then published at once, so
// that a transaction reads it without a lock.
type stmtCache struct {
	mu    sync.Mutex // serialises prepare and close
	ready atomic.Pointer[map[stmtKey]*sql.Stmt]
	done  bool // closed: prepare no more
}

// prepare prepares the set unless it is ready. Call it before BeginTx.
func (c *stmtCache) prepare(ctx context.Context, s *sqlStore) error {
	if c.ready.Load() != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready.Load() != nil || c.done {
		return nil
	}
	m := make(map[stmtKey]*sql.Stmt, int(stKinds)*len(pieceSizes))
	for kind := range stKinds {
		for _, rows := range pieceSizes {
			k := stmtKey{kind, rows}
			st, err := s.db.PrepareContext(ctx, s.rebind(k.text()))
			if err != nil {
				closeAll(m)
				return err
			}
			m[k] = st
		}
	}
	c.ready.Store(&m)
	return nil
}

// close closes the prepared statements; later transactions prepare
// their own (see stmt).
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	if m := c.ready.Swap(nil); m != nil {
		return closeAll(*m)
	}
	return nil
}

func closeAll(m map[stmtKey]*sql.Stmt) error {
	var errs []error
	for _, st := range m {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// stmt is statement k for tx: the cached one when the set is prepared,
// otherwise one prepared in tx for this use (the rollup's backfill runs
// in a migration, before anything is cached). Close it after use: it
// releases a statement of tx's own; for a cached one, it is cheap.
func (s *sqlStore) stmt(ctx context.Context, tx *sql.Tx, k stmtKey) (*sql.Stmt, error) {
	if m := s.stmts.ready.Load(); m != nil {
		if st := (*m)[k]; st != nil {
			return tx.StmtContext(ctx, st), nil
		}
	}
	return tx.PrepareContext(ctx, s.rebind(k.text()))
}
