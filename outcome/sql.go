package outcome

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite", pure Go
)

// sqlStore serves SQLite and PostgreSQL with one set of statements: both
// speak INSERT … ON CONFLICT … DO UPDATE with excluded, and both divide
// BIGINTs as integers, which is all the reports need. Only the placeholder
// style differs (rebind).
type sqlStore struct {
	db       *sql.DB
	postgres bool
	log      *slog.Logger
	now      func() time.Time
	// noRollup answers every read from raw rows: the reference the
	// rollup is tested against.
	noRollup bool
	// stmts are the write path's statements (stmts.go).
	stmts *stmtCache
}

func openSQLite(ctx context.Context, opts Options) (*sqlStore, error) {
	path := opts.Path
	if path == "" {
		path = DefaultPath
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// The file holds call records (numbers, times, carriers): create it
	// 0600 before SQLite does, which would use 0644. SQLite gives its -wal
	// and -shm files the mode of the database file.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f.Close()
	// WAL lets the dashboard read while the listener writes; busy_timeout
	// covers a second process (`stirgate report`) on the same file.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// One connection serialises writers inside this process, so SQLite
	// never answers SQLITE_BUSY to ourselves.
	db.SetMaxOpenConns(1)
	return newSQLStore(ctx, db, false, opts)
}

func openPostgres(ctx context.Context, opts Options) (*sqlStore, error) {
	if opts.DSN == "" {
		return nil, fmt.Errorf("store: postgres needs a DSN")
	}
	db, err := sql.Open("pgx", opts.DSN)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db.SetMaxOpenConns(8)
	// Keep them: a report reads on five at once, and a new PostgreSQL
	// connection is a new server process (database/sql keeps two).
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return newSQLStore(ctx, db, true, opts)
}

func newSQLStore(ctx context.Context, db *sql.DB, postgres bool, opts Options) (*sqlStore, error) {
	s := &sqlStore{db: db, postgres: postgres, log: opts.Logger, now: opts.Now, stmts: &stmtCache{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// migrations are applied in order, each once, each in its own transaction.
// Append only: a released version never changes.
var migrations = []string{
	1: `CREATE TABLE outcomes (
		system       TEXT    NOT NULL,
		uniqueid     TEXT    NOT NULL,
		kind         TEXT    NOT NULL,
		ts           BIGINT  NOT NULL DEFAULT 0,
		until_ts     BIGINT  NOT NULL DEFAULT 0,
		linkedid     TEXT    NOT NULL DEFAULT '',
		direction    TEXT    NOT NULL DEFAULT '',
		orig         TEXT    NOT NULL DEFAULT '',
		dest         TEXT    NOT NULL DEFAULT '',
		result       TEXT    NOT NULL DEFAULT '',
		verstat      TEXT    NOT NULL DEFAULT '',
		attest       TEXT    NOT NULL DEFAULT '',
		origid       TEXT    NOT NULL DEFAULT '',
		sip_code     INTEGER NOT NULL DEFAULT 0,
		error_name   TEXT    NOT NULL DEFAULT '',
		reason       TEXT    NOT NULL DEFAULT '',
		x5u          TEXT    NOT NULL DEFAULT '',
		spc          TEXT    NOT NULL DEFAULT '',
		hangup_cause TEXT    NOT NULL DEFAULT '',
		source       TEXT    NOT NULL DEFAULT '',
		PRIMARY KEY (system, uniqueid, kind)
	)`,
	2: `CREATE INDEX outcomes_ts ON outcomes (ts)`,
	3: `CREATE INDEX outcomes_result_ts ON outcomes (result, ts)`,
	4: `CREATE INDEX outcomes_error_ts ON outcomes (error_name, ts)`,
	5: `CREATE INDEX outcomes_attest_ts ON outcomes (attest, ts)`,
	// Every surface records: the SIP redirect server's source and listener,
	// the HTTP API's client.
	6: `ALTER TABLE outcomes ADD COLUMN peer TEXT NOT NULL DEFAULT ''`,
	7: `ALTER TABLE outcomes ADD COLUMN profile TEXT NOT NULL DEFAULT ''`,
	8: `ALTER TABLE outcomes ADD COLUMN mode TEXT NOT NULL DEFAULT ''`,
	9: `ALTER TABLE outcomes ADD COLUMN client TEXT NOT NULL DEFAULT ''`,
	// PASSporT extensions of a verified call: the div chain's diverting
	// numbers (RFC 8946), the rcd display name and call reason (RFC 9795).
	10: `ALTER TABLE outcomes ADD COLUMN div TEXT NOT NULL DEFAULT ''`,
	11: `ALTER TABLE outcomes ADD COLUMN rcd_nam TEXT NOT NULL DEFAULT ''`,
	12: `ALTER TABLE outcomes ADD COLUMN rcd_crn TEXT NOT NULL DEFAULT ''`,
	// The arrangement of a signature (FCC 24-120): tenant, customer and
	// the rule that decided its attestation. One migration, three
	// statements: both drivers run a multi-statement Exec without args.
	13: `ALTER TABLE outcomes ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
		ALTER TABLE outcomes ADD COLUMN customer TEXT NOT NULL DEFAULT '';
		ALTER TABLE outcomes ADD COLUMN rule TEXT NOT NULL DEFAULT ''`,
	// The dashboard's rollup (rollup.go): counts per hour and per day, in
	// total and per breakdown dimension; backfilled from the rows there
	// are (migrationHooks). On SQLite the table is its key (WITHOUT ROWID,
	// see sqliteSuffix): a scan reads counts from the key's b-tree alone.
	// n is an INTEGER: PostgreSQL sums those in a machine word (a BIGINT
	// sum is NUMERIC); a bucket holds at most a week of one combination.
	14: `CREATE TABLE outcome_rollup (
		dim        TEXT   NOT NULL,
		width_ms   BIGINT NOT NULL,
		bucket_ms  BIGINT NOT NULL,
		system     TEXT   NOT NULL,
		kind       TEXT   NOT NULL,
		result     TEXT   NOT NULL,
		attest     TEXT   NOT NULL,
		error_name TEXT   NOT NULL,
		dkey       TEXT   NOT NULL,
		n          INTEGER NOT NULL,
		PRIMARY KEY (dim, width_ms, bucket_ms, system, kind, result, attest, error_name, dkey)
	)`,
	// Keyset paging of the calls list, newest first (Filter.After); it
	// serves every time range that (ts) served.
	15: `CREATE INDEX outcomes_ts_key ON outcomes (ts, system, uniqueid, kind);
	DROP INDEX outcomes_ts`,
}

// sqliteSuffix ends the first statement of a migration on SQLite only.
var sqliteSuffix = map[int]string{14: " WITHOUT ROWID"}

// migrationHooks run in a migration's transaction after its statements.
var migrationHooks = map[int]func(s *sqlStore, ctx context.Context, tx *sql.Tx) error{
	14: (*sqlStore).backfillRollup,
}

// SchemaVersion is the version a freshly migrated store reports.
var SchemaVersion = len(migrations) - 1

// migrationLock is the PostgreSQL advisory lock key that serialises
// nodes migrating one database at the same moment.
const migrationLock = 7270917

func (s *sqlStore) migrate(ctx context.Context) error {
	// One connection for the whole run: PostgreSQL's session lock belongs
	// to a connection, and even CREATE TABLE IF NOT EXISTS races there.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer conn.Close()
	if s.postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+strconv.Itoa(migrationLock)+`)`); err != nil {
			return fmt.Errorf("store: migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+strconv.Itoa(migrationLock)+`)`)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at BIGINT  NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrations table: %w", err)
	}
	for v := 1; v < len(migrations); v++ {
		if migrations[v] == "" {
			// A number kept for a migration of another branch: nothing to
			// apply, and nothing recorded, so that it runs once it lands.
			continue
		}
		if err := s.migrateOne(ctx, conn, v); err != nil {
			return fmt.Errorf("store: migration %d: %w", v, err)
		}
	}
	return nil
}

func (s *sqlStore) migrateOne(ctx context.Context, conn *sql.Conn, v int) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), v).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	// A migration may hold several statements, each ending a line with ";".
	for i, stmt := range strings.Split(migrations[v], ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if i == 0 && !s.postgres {
			stmt += sqliteSuffix[v]
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if hook := migrationHooks[v]; hook != nil {
		if err := hook(s, ctx, tx); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), v, s.now().Unix()); err != nil {
		return err
	}
	return tx.Commit()
}

// Version returns the highest applied migration.
func (s *sqlStore) Version(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

// rebind turns ? placeholders into PostgreSQL's $n. No statement here has
// a ? inside a literal.
func (s *sqlStore) rebind(q string) string {
	if !s.postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fill is "take the new value unless it is empty": a later event (Hangup
// after the UserEvent) adds what it knows without erasing what came first,
// and a replay of the same event changes nothing.
func fill(col, zero string) string {
	return fmt.Sprintf("%[1]s = CASE WHEN excluded.%[1]s <> %[2]s THEN excluded.%[1]s ELSE outcomes.%[1]s END", col, zero)
}

// keep is "the first non-empty value stays": for the call's identity
// (numbers, linkedid, direction, source). The surface that verified or
// signed wrote canonical numbers; the AMI listener's caller ID from
// Newchannel is raw (a "+", a national format) and only fills a gap.
func keep(col string) string {
	return fmt.Sprintf("%[1]s = CASE WHEN outcomes.%[1]s <> '' THEN outcomes.%[1]s ELSE excluded.%[1]s END", col)
}

const upsertHead = `INSERT INTO outcomes (system, uniqueid, kind, ts, until_ts, linkedid, direction, orig, dest,
	result, verstat, attest, origid, sip_code, error_name, reason, x5u, spc, hangup_cause, source,
	peer, profile, mode, client, div, rcd_nam, rcd_crn, tenant, customer, rule)
	VALUES `

// upsertCols is the number of values appendUpsertArgs gives.
const upsertCols = 30

var upsertTail = `
	ON CONFLICT (system, uniqueid, kind) DO UPDATE SET
	ts = CASE WHEN outcomes.ts = 0 OR (excluded.ts <> 0 AND excluded.ts < outcomes.ts) THEN excluded.ts ELSE outcomes.ts END, ` +
	strings.Join([]string{
		fill("until_ts", "0"), keep("linkedid"), keep("direction"), keep("orig"),
		keep("dest"), fill("result", "''"), fill("verstat", "''"), fill("attest", "''"),
		fill("origid", "''"), fill("sip_code", "0"), fill("error_name", "''"), fill("reason", "''"),
		fill("x5u", "''"), fill("spc", "''"), fill("hangup_cause", "''"),
		// The first surface to write a row names it: an AGI row stays "agi"
		// when the AMI listener later adds the hangup cause.
		keep("source"), keep("peer"), keep("profile"), keep("mode"), keep("client"),
		fill("div", "''"), fill("rcd_nam", "''"), fill("rcd_crn", "''"),
		fill("tenant", "''"), fill("customer", "''"), fill("rule", "''"),
	}, ", ")

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// appendUpsertArgs appends the upsertCols values of o to args.
func appendUpsertArgs(args []any, o Outcome) []any {
	return append(args, o.System, o.UniqueID, o.Kind, ms(o.Time), ms(o.Until), o.LinkedID, o.Direction, o.Orig, o.Dest,
		o.Result, o.Verstat, o.Attest, o.OrigID, o.SIPCode, o.ErrorName, o.Reason, o.X5U, o.SPC, o.HangupCause, string(o.Source),
		o.Peer, o.Profile, o.Mode, o.Client, o.Div, o.RCDNam, o.RCDCrn, o.Tenant, o.Customer, o.Rule)
}

func (s *sqlStore) Record(ctx context.Context, o Outcome) error {
	return s.RecordBatch(ctx, []Outcome{o})
}

func (s *sqlStore) RecordBatch(ctx context.Context, os []Outcome) error {
	for _, o := range os {
		if err := o.valid(); err != nil {
			return err
		}
	}
	if err := s.stmts.prepare(ctx, s); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer tx.Rollback()
	if err := s.recordTx(ctx, tx, os); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// rowKey is a row's key as PostgreSQL's advisory lock hashes it: every
// node must spell it alike.
func rowKey(o Outcome) string { return o.System + "\x1f" + o.UniqueID + "\x1f" + o.Kind }

// okey is a row's key, for maps.
type okey struct{ system, uniqueID, kind string }

func keyOf(o Outcome) okey { return okey{o.System, o.UniqueID, o.Kind} }

// recordTx upserts os and moves the rollup by the difference: a merge
// uncounts the row as it was and counts it as it is now. Statements are
// multi-row (a piece of distinct keys each), so a batch costs a few round
// trips, not a few per outcome.
func (s *sqlStore) recordTx(ctx context.Context, tx *sql.Tx, os []Outcome) error {
	if s.postgres {
		// Two nodes merging the same key at once would both read "no row
		// yet" and both count it: the key's lock makes the second wait for
		// the first to commit. All of a batch's keys are locked at once,
		// in one order, so that two batches cannot deadlock. (SQLite has
		// one writer.)
		keys := make([]string, 0, len(os))
		for _, o := range os {
			keys = append(keys, rowKey(o))
		}
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(h) FROM
			(SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY 1) AS l`, keys); err != nil {
			return err
		}
	}
	r := recorder{s: s, tx: tx, d: deltas{}}
	if err := eachPiece(ctx, os, r.insert); err != nil {
		return err
	}
	return s.applyDeltas(ctx, tx, r.d)
}

// eachPiece calls write with os cut into runs of distinct keys (one
// statement may not change a row twice: a key seen again starts the next
// run) and each run into pieces of pieceSizes.
func eachPiece(ctx context.Context, os []Outcome, write func(context.Context, []Outcome) error) error {
	seen := make(map[okey]bool, min(len(os), maxPiece))
	for len(os) > 0 {
		clear(seen)
		n := 0
		for n < len(os) && n < maxPiece && !seen[keyOf(os[n])] {
			seen[keyOf(os[n])] = true
			n++
		}
		run := os[:n]
		os = os[n:]
		if err := pieces(len(run), func(lo, hi int) error { return write(ctx, run[lo:hi]) }); err != nil {
			return err
		}
	}
	return nil
}

// recorder is the state of one recordTx: the rollup's deltas, and one
// argument buffer for all its statements.
type recorder struct {
	s    *sqlStore
	tx   *sql.Tx
	d    deltas
	args []any
}

// insert writes a piece of distinct keys, inserting first: almost every
// outcome is a new row, counted once from what the insert returns. Only
// the keys already there (a later event of a call) take the merge, which
// must read each row before changing it.
func (r *recorder) insert(ctx context.Context, piece []Outcome) error {
	r.args = r.args[:0]
	for _, o := range piece {
		r.args = appendUpsertArgs(r.args, o)
	}
	inserted := make([]okey, 0, len(piece))
	err := r.query(ctx, stmtKey{stInsert, len(piece)}, func(rows *sql.Rows) error {
		var (
			f  fact
			id string
		)
		if err := f.scan(rows, &id); err != nil {
			return err
		}
		r.d.add(&f, 1)
		inserted = append(inserted, okey{f.system, id, f.kind})
		return nil
	})
	if err != nil || len(inserted) == len(piece) {
		return err
	}
	merge := existing(piece, inserted)
	return pieces(len(merge), func(lo, hi int) error { return r.merge(ctx, merge[lo:hi]) })
}

// existing is the outcomes of piece whose keys were not inserted.
func existing(piece []Outcome, inserted []okey) []Outcome {
	in := make(map[okey]bool, len(inserted))
	for _, k := range inserted {
		in[k] = true
	}
	var out []Outcome
	for _, o := range piece {
		if !in[keyOf(o)] {
			out = append(out, o)
		}
	}
	return out
}

// merge upserts a piece of distinct keys that have rows: each row is
// uncounted as it was and counted as the upsert left it.
func (r *recorder) merge(ctx context.Context, piece []Outcome) error {
	r.args = r.args[:0]
	for _, o := range piece {
		r.args = append(r.args, o.System, o.UniqueID, o.Kind)
	}
	if err := r.query(ctx, stmtKey{stSelect, len(piece)}, r.facts(-1)); err != nil {
		return err
	}
	r.args = r.args[:0]
	for _, o := range piece {
		r.args = appendUpsertArgs(r.args, o)
	}
	return r.query(ctx, stmtKey{stUpsert, len(piece)}, r.facts(1))
}

// facts scans a row of factCols into the deltas with sign.
func (r *recorder) facts(sign int64) func(*sql.Rows) error {
	return func(rows *sql.Rows) error {
		var f fact
		if err := f.scan(rows); err != nil {
			return err
		}
		r.d.add(&f, sign)
		return nil
	}
}

// query runs statement k with r.args and calls each for every row.
func (r *recorder) query(ctx context.Context, k stmtKey, each func(*sql.Rows) error) error {
	st, err := r.s.stmt(ctx, r.tx, k)
	if err != nil {
		return err
	}
	defer st.Close()
	rows, err := st.QueryContext(ctx, r.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// tuples is "(?, ?), (?, ?)" for rows of width placeholders.
func tuples(width, rows int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}

// where builds the WHERE clause of f. Gap records are excluded unless asked
// for by kind, so that reports count calls only.
func where(f Filter) (string, []any) {
	conds, args := timeConds(f)
	fc, fa := filterConds(f, true)
	return " WHERE " + strings.Join(append(conds, fc...), " AND "), append(args, fa...)
}

func timeConds(f Filter) (conds []string, args []any) {
	if !f.Since.IsZero() {
		conds, args = append(conds, "ts >= ?"), append(args, ms(f.Since))
	}
	if !f.Until.IsZero() {
		conds, args = append(conds, "ts < ?"), append(args, ms(f.Until))
	}
	return conds, args
}

// filterConds are the conditions of f but time. The rollup has the
// columns up to attest; raw adds the breakdown columns, which the rollup
// keeps as (dim, dkey) instead.
func filterConds(f Filter, raw bool) (conds []string, args []any) {
	add := func(c string, v any) { conds = append(conds, c); args = append(args, v) }
	if f.System != "" {
		add("system = ?", f.System)
	}
	if f.Kind != "" {
		add("kind = ?", f.Kind)
	} else {
		add("kind <> ?", KindGap)
	}
	if f.Result != "" {
		add("result = ?", f.Result)
	}
	if f.ErrorName != "" {
		add("error_name = ?", f.ErrorName)
	}
	if f.Attest != "" {
		add("attest = ?", f.Attest)
	}
	if !raw {
		return conds, args
	}
	if f.SPC != "" {
		add("spc = ?", f.SPC)
	}
	if f.Peer != "" {
		add("peer = ?", f.Peer)
	}
	if f.Tenant != "" {
		add("tenant = ?", f.Tenant)
	}
	if f.Orig != "" {
		add("orig = ?", f.Orig)
	}
	if f.X5UHost != "" {
		// The host, followed by a path or a port: never a longer host.
		h := likeEscaper.Replace(f.X5UHost)
		conds = append(conds, `(x5u LIKE ? ESCAPE '\' OR x5u LIKE ? ESCAPE '\')`)
		args = append(args, "%://"+h+"/%", "%://"+h+":%")
	}
	return conds, args
}

const columns = `system, uniqueid, kind, ts, until_ts, linkedid, direction, orig, dest, result, verstat, attest,
	origid, sip_code, error_name, reason, x5u, spc, hangup_cause, source, peer, profile, mode, client, div, rcd_nam, rcd_crn,
	tenant, customer, rule`

func (s *sqlStore) Query(ctx context.Context, f Filter) ([]Outcome, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxLimit)
	w, args := where(f)
	if !s.postgres {
		// "Newest first, on this system" is a backward walk of the
		// (ts, key) index that stops after a page; SQLite would rather
		// take the system's rows from the primary key and sort them all
		// (seconds at 10 million rows). The unary + keeps the key out.
		w = strings.Replace(w, "system = ?", "+system = ?", 1)
	}
	if c := f.After; c != nil {
		// Keyset paging on outcomes_ts_key, in its order.
		w += " AND (ts, system, uniqueid, kind) < (?, ?, ?, ?)"
		args = append(args, ms(c.Time), c.System, c.UniqueID, c.Kind)
	}
	q := `SELECT ` + columns + ` FROM outcomes` + w + ` ORDER BY ts DESC, system DESC, uniqueid DESC, kind DESC LIMIT ` + strconv.Itoa(limit)
	if f.Offset > 0 {
		q += ` OFFSET ` + strconv.Itoa(f.Offset)
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer rows.Close()
	var out []Outcome
	for rows.Next() {
		var (
			o         Outcome
			ts, until int64
			src       string
		)
		if err := rows.Scan(&o.System, &o.UniqueID, &o.Kind, &ts, &until, &o.LinkedID, &o.Direction, &o.Orig, &o.Dest,
			&o.Result, &o.Verstat, &o.Attest, &o.OrigID, &o.SIPCode, &o.ErrorName, &o.Reason, &o.X5U, &o.SPC,
			&o.HangupCause, &src, &o.Peer, &o.Profile, &o.Mode, &o.Client, &o.Div, &o.RCDNam, &o.RCDCrn,
			&o.Tenant, &o.Customer, &o.Rule); err != nil {
			return nil, err
		}
		o.Time, o.Until, o.Source = fromMS(ts), fromMS(until), Source(src)
		out = append(out, o)
	}
	return out, rows.Err()
}

// pruneBatch bounds the rows one DELETE removes: a retention run over
// millions of rows never holds one long transaction or lock.
const pruneBatch = 10000

// Prune deletes outcomes older than before, in batches, and the rollup
// with them: whole buckets before the cut go; the bucket the cut falls in
// is uncounted row by row.
func (s *sqlStore) Prune(ctx context.Context, before time.Time) (int64, error) {
	cut := ms(before)
	// Rows before the coarsest bucket the cut falls in: their rollup
	// buckets all end before the cut and go whole below.
	n, err := s.pruneRows(ctx, floorTo(cut, levels[len(levels)-1]), false, 0)
	if err != nil {
		return n, err
	}
	m, err := s.pruneRows(ctx, cut, true, cut)
	n += m
	if err != nil {
		return n, err
	}
	for _, dim := range dimensions {
		for _, w := range levels {
			if _, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM outcome_rollup WHERE dim = ? AND width_ms = ? AND bucket_ms <= ?`),
				dim.name, w, cut-w); err != nil {
				return n, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
		}
	}
	return n, nil
}

// pruneRows deletes the rows before upTo in batches; with uncount, each
// batch also takes the deleted rows out of the rollup buckets that end
// after cut (the buckets before it are deleted whole).
func (s *sqlStore) pruneRows(ctx context.Context, upTo int64, uncount bool, cut int64) (int64, error) {
	sel := `rowid IN (SELECT rowid FROM outcomes WHERE ts < ? LIMIT ` + strconv.Itoa(pruneBatch) + `)`
	if s.postgres {
		sel = `ctid = ANY(ARRAY(SELECT ctid FROM outcomes WHERE ts < ? LIMIT ` + strconv.Itoa(pruneBatch) + `))`
	}
	q := s.rebind(`DELETE FROM outcomes WHERE ` + sel)
	var total int64
	for {
		var n int64
		err := func() error {
			if !uncount {
				res, err := s.db.ExecContext(ctx, q, upTo)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			}
			if err := s.stmts.prepare(ctx, s); err != nil {
				return err
			}
			tx, err := s.db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			rows, err := tx.QueryContext(ctx, q+` RETURNING `+factCols, upTo)
			if err != nil {
				return err
			}
			d := deltas{}
			for rows.Next() {
				var f fact
				if err := f.scan(rows); err != nil {
					rows.Close()
					return err
				}
				d.add(&f, -1)
				n++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for k := range d {
				if k.bucket+k.width <= cut {
					delete(d, k)
				}
			}
			if err := s.applyDeltas(ctx, tx, d); err != nil {
				return err
			}
			return tx.Commit()
		}()
		total += n
		if err != nil {
			return total, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if n < pruneBatch {
			return total, nil
		}
	}
}

func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

func (s *sqlStore) Close() error {
	if s == nil || s.db == nil {
		return nil
	}
	return errors.Join(s.stmts.close(), s.db.Close())
}
