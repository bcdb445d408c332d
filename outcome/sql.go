package outcome

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
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

	// upsert is upsertSQL prepared once: parsing and planning it again for
	// every batch cost a busy redirect server more CPU than its ECDSA
	// signatures (make bench-capacity). Prepared on first use, so that a
	// store that was down at open still works once it is up.
	upsertMu sync.Mutex
	upsert   *sql.Stmt
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
	db.SetConnMaxIdleTime(5 * time.Minute)
	return newSQLStore(ctx, db, true, opts)
}

func newSQLStore(ctx context.Context, db *sql.DB, postgres bool, opts Options) (*sqlStore, error) {
	s := &sqlStore{db: db, postgres: postgres, log: opts.Logger, now: opts.Now}
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
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return err
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

var upsertSQL = `INSERT INTO outcomes (system, uniqueid, kind, ts, until_ts, linkedid, direction, orig, dest,
	result, verstat, attest, origid, sip_code, error_name, reason, x5u, spc, hangup_cause, source,
	peer, profile, mode, client, div, rcd_nam, rcd_crn, tenant, customer, rule)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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

func upsertArgs(o Outcome) []any {
	return []any{o.System, o.UniqueID, o.Kind, ms(o.Time), ms(o.Until), o.LinkedID, o.Direction, o.Orig, o.Dest,
		o.Result, o.Verstat, o.Attest, o.OrigID, o.SIPCode, o.ErrorName, o.Reason, o.X5U, o.SPC, o.HangupCause, string(o.Source),
		o.Peer, o.Profile, o.Mode, o.Client, o.Div, o.RCDNam, o.RCDCrn, o.Tenant, o.Customer, o.Rule}
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
	// Prepared before the transaction: SQLite's one connection is the
	// transaction's until it ends.
	prepared, err := s.upsertStmt(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer tx.Rollback()
	// On the connection it was prepared on (SQLite has one), the
	// transaction's copy reuses the prepared statement.
	stmt := tx.StmtContext(ctx, prepared)
	defer stmt.Close()
	for _, o := range os {
		if _, err := stmt.ExecContext(ctx, upsertArgs(o)...); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// upsertStmt returns the prepared upsert, preparing it on first use.
func (s *sqlStore) upsertStmt(ctx context.Context) (*sql.Stmt, error) {
	s.upsertMu.Lock()
	defer s.upsertMu.Unlock()
	if s.upsert == nil {
		st, err := s.db.PrepareContext(ctx, s.rebind(upsertSQL))
		if err != nil {
			return nil, err
		}
		s.upsert = st
	}
	return s.upsert, nil
}

// where builds the WHERE clause of f. Gap records are excluded unless asked
// for by kind, so that reports count calls only.
func where(f Filter) (string, []any) {
	var (
		conds []string
		args  []any
	)
	add := func(c string, v any) { conds = append(conds, c); args = append(args, v) }
	if !f.Since.IsZero() {
		add("ts >= ?", ms(f.Since))
	}
	if !f.Until.IsZero() {
		add("ts < ?", ms(f.Until))
	}
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
	return " WHERE " + strings.Join(conds, " AND "), args
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
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT `+columns+` FROM outcomes`+w+
		` ORDER BY ts DESC, system, uniqueid, kind LIMIT `+strconv.Itoa(limit)+` OFFSET `+strconv.Itoa(max(f.Offset, 0))), args...)
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

// countBy groups the rows of f by expr, largest first.
func (s *sqlStore) countBy(ctx context.Context, expr, extra string, f Filter, limit int) ([]Count, error) {
	w, args := where(f)
	if extra != "" {
		w += " AND " + extra
	}
	q := `SELECT ` + expr + `, COUNT(*) AS n FROM outcomes` + w + ` GROUP BY ` + expr + ` ORDER BY n DESC, ` + expr
	if limit > 0 {
		q += ` LIMIT ` + strconv.Itoa(limit)
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer rows.Close()
	out := []Count{}
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Key, &c.N); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Unsigned results: a verifier saw no Identity ("none"), or a signer did
// not sign ("unsigned").
var unsignedResults = map[string]bool{"none": true, "unsigned": true}

func (s *sqlStore) Report(ctx context.Context, f Filter) (*Report, error) {
	r := &Report{Since: f.Since, Until: f.Until}
	var err error
	if r.ByResult, err = s.countBy(ctx, "result", "", f, 0); err != nil {
		return nil, err
	}
	for _, c := range r.ByResult {
		r.Total += c.N
		if unsignedResults[c.Key] {
			r.Unsigned += c.N
		}
	}
	if r.Total > 0 {
		r.UnsignedShare = float64(r.Unsigned) / float64(r.Total)
	}
	if r.ByAttest, err = s.countBy(ctx, "attest", "attest <> ''", f, 0); err != nil {
		return nil, err
	}
	if r.ByNode, err = s.countBy(ctx, "system", "", f, 0); err != nil {
		return nil, err
	}
	if r.ByError, err = s.countBy(ctx, "error_name", "error_name <> ''", f, 0); err != nil {
		return nil, err
	}
	fails := f
	fails.Result = "fail"
	x5us, err := s.countBy(ctx, "x5u", "x5u <> ''", fails, 0)
	if err != nil {
		return nil, err
	}
	r.TopX5UHosts = topHosts(x5us)
	if r.TopOrigins, err = s.countBy(ctx, "orig", "orig <> ''", fails, TopN); err != nil {
		return nil, err
	}
	if r.Hourly, err = s.hourly(ctx, f); err != nil {
		return nil, err
	}
	if f.Kind == "" || f.Kind == KindVerify {
		if r.Inbound, err = s.side(ctx, f, KindVerify); err != nil {
			return nil, err
		}
	}
	if f.Kind == "" || f.Kind == KindSign {
		if r.Outbound, err = s.side(ctx, f, KindSign); err != nil {
			return nil, err
		}
	}
	gaps := Filter{Since: f.Since, Until: f.Until, System: f.System, Kind: KindGap}
	gc, err := s.countBy(ctx, "kind", "", gaps, 0)
	if err != nil {
		return nil, err
	}
	for _, c := range gc {
		r.Gaps += c.N
	}
	return r, nil
}

// side is one direction of a report.
func (s *sqlStore) side(ctx context.Context, f Filter, kind string) (Side, error) {
	f.Kind = kind
	success, unsigned, failures := "pass", "none", "'fail', 'error'"
	if kind == KindSign {
		success, unsigned, failures = "signed", "unsigned", "'unsigned', 'error'"
	}
	var (
		sd  Side
		err error
	)
	if sd.ByResult, err = s.countBy(ctx, "result", "", f, 0); err != nil {
		return sd, err
	}
	for _, c := range sd.ByResult {
		sd.Total += c.N
		switch c.Key {
		case success:
			sd.Succeeded += c.N
		case unsigned:
			sd.Unsigned += c.N
		}
		if strings.Contains(failures, "'"+c.Key+"'") {
			sd.Failures += c.N
		}
	}
	if sd.Total > 0 {
		sd.SuccessShare = float64(sd.Succeeded) / float64(sd.Total)
		sd.UnsignedShare = float64(sd.Unsigned) / float64(sd.Total)
	}
	if sd.ByAttest, err = s.countBy(ctx, "attest", "attest <> ''", f, 0); err != nil {
		return sd, err
	}
	// Results are from a fixed list above, never from input.
	if sd.ByError, err = s.countBy(ctx, "error_name", "error_name <> '' AND result IN ("+failures+")", f, 0); err != nil {
		return sd, err
	}
	return sd, nil
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

var groupColumns = map[GroupBy]string{BySPC: "spc", ByX5UHost: "x5u", ByPeer: "peer", BySystem: "system", ByOrig: "orig", ByTenant: "tenant"}

func (s *sqlStore) Groups(ctx context.Context, f Filter, by GroupBy) ([]Group, error) {
	col, ok := groupColumns[by]
	if !ok {
		return nil, fmt.Errorf("store: no grouping by %q", by)
	}
	w, args := where(f)
	w += " AND " + col + " <> ''"
	sum := func(cond string) string { return "SUM(CASE WHEN " + cond + " THEN 1 ELSE 0 END)" }
	q := `SELECT ` + col + `, COUNT(*), ` + strings.Join([]string{
		sum("result = 'pass'"), sum("result IN ('fail', 'error')"), sum("result = 'none'"),
		sum("result = 'signed'"), sum("result = 'unsigned'"),
		sum("attest = 'A'"), sum("attest = 'B'"), sum("attest = 'C'"),
	}, ", ") + ` FROM outcomes` + w + ` GROUP BY ` + col
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	by2 := map[string]*Group{}
	for rows.Next() {
		var g Group
		if err := rows.Scan(&g.Key, &g.Total, &g.Pass, &g.Fail, &g.None, &g.Signed, &g.Unsigned, &g.A, &g.B, &g.C); err != nil {
			rows.Close()
			return nil, err
		}
		key := g.Key
		if by == ByX5UHost {
			key = hostOf(key)
		}
		if m := by2[key]; m != nil {
			m.Total += g.Total
			m.Pass += g.Pass
			m.Fail += g.Fail
			m.None += g.None
			m.Signed += g.Signed
			m.Unsigned += g.Unsigned
			m.A += g.A
			m.B += g.B
			m.C += g.C
		} else {
			g.Key = key
			by2[key] = &g
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// The most frequent failure of each group.
	errs := map[string]map[string]int{}
	q = `SELECT ` + col + `, error_name, COUNT(*) FROM outcomes` + w +
		` AND error_name <> '' AND result IN ('fail', 'error', 'unsigned') GROUP BY ` + col + `, error_name`
	rows, err = s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for rows.Next() {
		var (
			key, name string
			n         int
		)
		if err := rows.Scan(&key, &name, &n); err != nil {
			rows.Close()
			return nil, err
		}
		if by == ByX5UHost {
			key = hostOf(key)
		}
		if errs[key] == nil {
			errs[key] = map[string]int{}
		}
		errs[key][name] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(by2))
	for k, g := range by2 {
		for name, n := range errs[k] {
			if n > g.TopN || n == g.TopN && name < g.TopError {
				g.TopError, g.TopN = name, n
			}
		}
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		return out[i].Key < out[j].Key
	})
	// Tenants are all listed: each is an arrangement the records account for.
	if len(out) > TopN && by != ByTenant {
		out = out[:TopN]
	}
	return out, nil
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Hostname()
	}
	return u
}

// topHosts folds x5u URLs into their hosts: one carrier publishes many
// certificate URLs, and the operator asks "whose certificates fail".
func topHosts(x5us []Count) []Count {
	by := map[string]int{}
	for _, c := range x5us {
		host := c.Key
		if u, err := url.Parse(c.Key); err == nil && u.Host != "" {
			host = u.Hostname()
		}
		by[host] += c.N
	}
	out := make([]Count, 0, len(by))
	for k, n := range by {
		out = append(out, Count{k, n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Key < out[j].Key
	})
	if len(out) > TopN {
		out = out[:TopN]
	}
	return out
}

const hourMS = int64(time.Hour / time.Millisecond)

func (s *sqlStore) hourly(ctx context.Context, f Filter) ([]Hour, error) {
	w, args := where(f)
	q := `SELECT ts / ` + strconv.FormatInt(hourMS, 10) + ` AS h, kind, result, COUNT(*) FROM outcomes` + w +
		` GROUP BY h, kind, result ORDER BY h, kind, result`
	rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer rows.Close()
	out := []Hour{}
	for rows.Next() {
		var (
			h            int64
			kind, result string
			n            int
		)
		if err := rows.Scan(&h, &kind, &result, &n); err != nil {
			return nil, err
		}
		start := time.UnixMilli(h * hourMS).UTC()
		if len(out) == 0 || !out[len(out)-1].Start.Equal(start) {
			out = append(out, Hour{Start: start, ByResult: map[string]int{}, Inbound: map[string]int{}, Outbound: map[string]int{}})
		}
		b := &out[len(out)-1]
		b.ByResult[result] += n
		b.Total += n
		if kind == KindSign {
			b.Outbound[result] += n
		} else {
			b.Inbound[result] += n
		}
	}
	return out, rows.Err()
}

func (s *sqlStore) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.rebind(`DELETE FROM outcomes WHERE ts < ?`), ms(before))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return res.RowsAffected()
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
	s.upsertMu.Lock()
	if s.upsert != nil {
		_ = s.upsert.Close()
		s.upsert = nil
	}
	s.upsertMu.Unlock()
	return s.db.Close()
}
