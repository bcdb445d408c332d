package outcome

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The rollup keeps the dashboard fast at scale (30 days at 100 calls/s is
// some 260 million rows): counts of outcomes per bucket of time and per
// combination of the low-cardinality columns every aggregate reads
// (system, kind, result, attest, error_name), once without a breakdown and
// once per breakdown dimension (dim, dkey: the SPC, the certificate host,
// the trunk...). Buckets are hours, days and weeks: a 30-day report reads
// about four week rows per combination, the days and hours at its edges,
// and raw rows for the partial hours at its very edges (see plan).
//
// The rollup is written in the transaction that writes the outcomes, as a
// delta: a merge into an existing row subtracts that row's old contribution
// and adds its new one, so a row merged ten times is counted once.
//
// Adding a breakdown (say, per tenant) is a new entry in dimensions, a
// case in fact.get and a backfill; no schema change. Adding a column that
// every aggregate filters on is an ALTER TABLE ... ADD COLUMN with a
// default plus rebuilding the table with the column in its primary key.

const (
	dayMS  = 24 * hourMS
	weekMS = 7 * dayMS // from the epoch's Thursday: whole days, that is all it needs
)

// levels are the bucket widths, finest first, each a multiple of the one
// before.
var levels = []int64{hourMS, dayMS, weekMS}

// dimension is one breakdown of the rollup.
type dimension struct {
	name string // the dim column; "" is the total, no breakdown
	col  string // the outcomes column the key is read from
	host bool   // the key is the host of the column's URL
	// failuresOnly keeps an unbounded column (calling numbers) to the rows
	// the dashboard ranks by it: failed verifications.
	failuresOnly bool
	// coarse rows leave attest and error_name empty: fewer rows for a
	// column with many values, at the price of reading raw rows when a
	// read filters or groups by those.
	coarse bool
}

var dimensions = []dimension{
	{name: ""},
	{name: "spc", col: "spc"},
	{name: "x5u_host", col: "x5u", host: true},
	{name: "peer", col: "peer"},
	{name: "tenant", col: "tenant"},
	{name: "fail_orig", col: "orig", failuresOnly: true, coarse: true},
}

func dimensionNamed(name string) (dimension, bool) {
	for _, d := range dimensions {
		if d.name == name {
			return d, true
		}
	}
	return dimension{}, false
}

// failed says whether a result counts as a failure for failuresOnly.
func failed(result string) bool { return result == "fail" || result == "error" }

// fact is what the rollup reads of one outcome row.
type fact struct {
	ts                                      int64
	system, kind, result, attest, errorName string
	x5u, spc, peer, orig, tenant            string
}

// factCols are the outcomes columns scanned into a fact, in scanFact order.
const factCols = `ts, system, kind, result, attest, error_name, x5u, spc, peer, orig, tenant`

// scan reads a row of factCols, preceded by the columns of before.
func (f *fact) scan(sc interface{ Scan(...any) error }, before ...any) error {
	return sc.Scan(append(before, &f.ts, &f.system, &f.kind, &f.result, &f.attest, &f.errorName, &f.x5u, &f.spc, &f.peer, &f.orig, &f.tenant)...)
}

func (f *fact) get(col string) string {
	switch col {
	case "x5u":
		return f.x5u
	case "spc":
		return f.spc
	case "peer":
		return f.peer
	case "orig":
		return f.orig
	case "tenant":
		return f.tenant
	}
	panic("outcome: rollup reads unknown column " + col)
}

func factOf(o Outcome) fact {
	return fact{ts: ms(o.Time), system: o.System, kind: o.Kind, result: o.Result, attest: o.Attest, errorName: o.ErrorName,
		x5u: o.X5U, spc: o.SPC, peer: o.Peer, orig: o.Orig, tenant: o.Tenant}
}

// rkey names one rollup row.
type rkey struct {
	width, bucket                           int64
	dim, dkey                               string
	system, kind, result, attest, errorName string
}

// deltas are pending changes to rollup rows.
type deltas map[rkey]int64

// add counts f (n = 1) or uncounts it (n = -1) in every level and dimension.
func (d deltas) add(f *fact, n int64) {
	for _, dim := range dimensions {
		key := ""
		if dim.name != "" {
			if dim.failuresOnly && !failed(f.result) {
				continue
			}
			key = f.get(dim.col)
			if dim.host && key != "" {
				key = hostOf(key)
			}
			if key == "" {
				continue
			}
		}
		attest, errorName := f.attest, f.errorName
		if dim.coarse {
			attest, errorName = "", ""
		}
		for _, w := range levels {
			k := rkey{width: w, bucket: floorTo(f.ts, w), dim: dim.name, dkey: key,
				system: f.system, kind: f.kind, result: f.result, attest: attest, errorName: errorName}
			d[k] += n
		}
	}
}

func floorTo(v, w int64) int64 {
	if v < 0 {
		return -((-v + w - 1) / w) * w
	}
	return v / w * w
}

func ceilTo(v, w int64) int64 { return -floorTo(-v, w) }

const (
	rollupHead = `INSERT INTO outcome_rollup (width_ms, bucket_ms, dim, dkey, system, kind, result, attest, error_name, n) VALUES `
	rollupTail = `
	ON CONFLICT (dim, width_ms, bucket_ms, system, kind, result, attest, error_name, dkey)
	DO UPDATE SET n = outcome_rollup.n + excluded.n`
	// rollupWidth is the number of values of one rollup row.
	rollupWidth = 10
)

// applyDeltas writes d in tx, in multi-row statements of pieceSizes rows.
// Rows are updated in one sorted order, so that two PostgreSQL nodes
// writing at once lock them in the same order (no deadlock between their
// transactions).
func (s *sqlStore) applyDeltas(ctx context.Context, tx *sql.Tx, d deltas) error {
	keys := make([]rkey, 0, len(d))
	for k, n := range d {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	args := make([]any, 0, rollupWidth*min(len(keys), maxPiece))
	return pieces(len(keys), func(lo, hi int) error {
		args = args[:0]
		for _, k := range keys[lo:hi] {
			args = append(args, k.width, k.bucket, k.dim, k.dkey, k.system, k.kind, k.result, k.attest, k.errorName, d[k])
		}
		st, err := s.stmt(ctx, tx, stmtKey{stRollup, hi - lo})
		if err != nil {
			return err
		}
		defer st.Close()
		_, err = st.ExecContext(ctx, args...)
		return err
	})
}

func (a rkey) less(b rkey) bool {
	if a.dim != b.dim {
		return a.dim < b.dim
	}
	if a.width != b.width {
		return a.width < b.width
	}
	if a.bucket != b.bucket {
		return a.bucket < b.bucket
	}
	for _, p := range [][2]string{{a.system, b.system}, {a.kind, b.kind}, {a.result, b.result}, {a.attest, b.attest}, {a.errorName, b.errorName}} {
		if p[0] != p[1] {
			return p[0] < p[1]
		}
	}
	return a.dkey < b.dkey
}

// backfillRollup builds the rollup from the outcomes already stored, one
// day at a time so that memory stays bounded by a day's combinations. It
// runs once, in the migration that creates the rollup.
func (s *sqlStore) backfillRollup(ctx context.Context, tx *sql.Tx) error {
	var lo, hi sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MIN(ts), MAX(ts) FROM outcomes`).Scan(&lo, &hi); err != nil {
		return err
	}
	if !lo.Valid {
		return nil
	}
	for day := floorTo(lo.Int64, dayMS); day <= hi.Int64; day += dayMS {
		d := deltas{}
		rows, err := tx.QueryContext(ctx, s.rebind(`SELECT `+factCols+` FROM outcomes WHERE ts >= ? AND ts < ?`), day, day+dayMS)
		if err != nil {
			return err
		}
		for rows.Next() {
			var f fact
			if err := f.scan(rows); err != nil {
				rows.Close()
				return err
			}
			d.add(&f, 1)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if err := s.applyDeltas(ctx, tx, d); err != nil {
			return err
		}
	}
	return nil
}

// cols selects the columns of a cube.
type cols struct{ hour, system, kind, result, attest, errorName, key bool }

// cell is one row of a cube; columns not selected stay zero.
type cell struct {
	hour                                    int64
	system, kind, result, attest, errorName string
	key                                     string
}

// segment is a period [lo, hi) in milliseconds read from one source:
// width 0 is raw rows, otherwise rollup buckets of that width.
type segment struct{ lo, hi, width int64 }

// openEnd stands for "no until": later than any stored time.
const openEnd = int64(1) << 62

// plan splits [since, until) into raw edges and then, level by level,
// whole buckets of each width: a month is four weeks, a few days and
// hours at either side, and the partial hours at the very edges. A cube by
// hour reads hours only.
func plan(f Filter, byHour bool) []segment {
	lo, hi := int64(0), openEnd
	if !f.Since.IsZero() {
		lo = ms(f.Since)
	}
	if !f.Until.IsZero() {
		hi = ms(f.Until)
	}
	if lo >= hi {
		return nil
	}
	widths := levels
	if byHour {
		widths = levels[:1]
	}
	hs, he := ceilTo(lo, widths[0]), floorTo(hi, widths[0])
	if hs >= he {
		return []segment{{lo, hi, 0}}
	}
	var out []segment
	push := func(a, b, w int64) {
		if a < b {
			out = append(out, segment{a, b, w})
		}
	}
	// level covers [a, b), both aligned to widths[i], with the coarsest
	// buckets that fit.
	var level func(a, b int64, i int)
	level = func(a, b int64, i int) {
		if i+1 < len(widths) {
			na, nb := ceilTo(a, widths[i+1]), floorTo(b, widths[i+1])
			if na < nb {
				push(a, na, widths[i])
				level(na, nb, i+1)
				push(nb, b, widths[i])
				return
			}
		}
		push(a, b, widths[i])
	}
	push(lo, hs, 0)
	level(hs, he, 0)
	push(he, hi, 0)
	return out
}

// cube counts the outcomes of f grouped by the selected columns, and by
// the key of dimension dim when c.key is set ("orig" is the raw calling
// number, never rolled up). It reads the rollup where it can and raw rows
// for partial hours, or for everything when the filter combines
// dimensions the rollup keeps apart.
func (s *sqlStore) cube(ctx context.Context, f Filter, dim string, c cols) (map[cell]int, error) {
	// Filters on a breakdown column are served by that dimension's rows.
	var fdims []string
	fval := map[string]string{}
	for _, p := range []struct{ name, v string }{{"spc", f.SPC}, {"peer", f.Peer}, {"x5u_host", f.X5UHost}, {"tenant", f.Tenant}} {
		if p.v != "" {
			fdims = append(fdims, p.name)
			fval[p.name] = p.v
		}
	}
	useRollup := !s.noRollup && f.Orig == "" && dim != "orig" && len(fdims) <= 1
	rdim := dim
	if useRollup && len(fdims) == 1 {
		switch {
		case !c.key && dim == "":
			rdim = fdims[0]
		case dim != fdims[0]:
			useRollup = false
		}
	}
	if d, ok := dimensionNamed(rdim); ok && d.coarse && (f.Attest != "" || f.ErrorName != "" || c.attest || c.errorName) {
		useRollup = false
	}
	out := map[cell]int{}
	var segs []segment
	if useRollup {
		segs = plan(f, c.hour)
	} else {
		// The raw rows over the whole period: the filter's own bounds.
		segs = []segment{{-1, -1, 0}}
	}
	// One statement: a branch per segment, each on its own index range,
	// added up outside (one round trip, one plan).
	var (
		branches []string
		args     []any
		host     bool
	)
	for _, sg := range segs {
		var (
			q string
			a []any
		)
		if sg.width == 0 {
			var h bool
			q, a, h = cubeRaw(f, dim, c, sg)
			host = host || h
		} else {
			q, a = cubeRollup(f, rdim, fval[rdim], c, sg)
		}
		branches, args = append(branches, q), append(args, a...)
	}
	if d, ok := dimensionNamed(dim); ok && d.host {
		// Raw branches group by URL; the rollup's keys are hosts already
		// (hostOf of a host is the host).
		host = true
	}
	if len(branches) > 0 {
		sel := c.selectList("h", "k")
		q := `SELECT ` + strings.Join(append(sel, "SUM(n)"), ", ") + ` FROM (` + strings.Join(branches, " UNION ALL ") + `) AS segs`
		if len(sel) > 0 {
			q += ` GROUP BY ` + strings.Join(sel, ", ")
		}
		rows, err := s.db.QueryContext(ctx, s.rebind(q), args...)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		err = c.scanIntoNullable(rows, host, out)
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	for k, n := range out {
		if n == 0 {
			delete(out, k)
		}
	}
	return out, nil
}

// selectList returns the grouped expressions of c, in cell order.
func (c cols) selectList(hourExpr, keyExpr string) []string {
	var e []string
	for _, p := range []struct {
		on   bool
		expr string
	}{{c.hour, hourExpr}, {c.system, "system"}, {c.kind, "kind"}, {c.result, "result"}, {c.attest, "attest"}, {c.errorName, "error_name"}, {c.key, keyExpr}} {
		if p.on {
			e = append(e, p.expr)
		}
	}
	return e
}

func (c cols) scanInto(rows *sql.Rows, host bool, out map[cell]int) error {
	for rows.Next() {
		var (
			k    cell
			n    int64
			dest []any
		)
		for _, p := range []struct {
			on bool
			p  any
		}{{c.hour, &k.hour}, {c.system, &k.system}, {c.kind, &k.kind}, {c.result, &k.result}, {c.attest, &k.attest}, {c.errorName, &k.errorName}, {c.key, &k.key}} {
			if p.on {
				dest = append(dest, p.p)
			}
		}
		dest = append(dest, &n)
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if host {
			k.key = hostOf(k.key)
		}
		out[k] += int(n)
	}
	return rows.Err()
}

// cubeRollup is the branch of a rollup segment: the selected columns as
// h, system, ..., k, and n.
func cubeRollup(f Filter, dim, dkey string, c cols, sg segment) (string, []any) {
	conds := []string{"dim = ?", "width_ms = ?", "bucket_ms >= ?", "bucket_ms < ?"}
	args := []any{dim, sg.width, sg.lo, sg.hi}
	if dkey != "" {
		conds, args = append(conds, "dkey = ?"), append(args, dkey)
	}
	fc, fa := filterConds(f, false)
	conds, args = append(conds, fc...), append(args, fa...)
	return branch(c, "bucket_ms", "dkey", "SUM(n)", "outcome_rollup", conds), args
}

// branch is one segment's grouped SELECT, its columns named as the outer
// query adds them up.
func branch(c cols, hourExpr, keyExpr, count, table string, conds []string) string {
	sel := c.selectList(hourExpr, keyExpr)
	named := c.selectList(hourExpr+" AS h", keyExpr+" AS k")
	q := `SELECT ` + strings.Join(append(named, count+" AS n"), ", ") + ` FROM ` + table + ` WHERE ` + strings.Join(conds, " AND ")
	if len(sel) > 0 {
		q += ` GROUP BY ` + strings.Join(sel, ", ")
	}
	return q
}

// scanIntoNullable scans the outer sums; SUM is NULL over no rows when
// nothing is grouped.
func (c cols) scanIntoNullable(rows *sql.Rows, host bool, out map[cell]int) error {
	if c != (cols{}) {
		return c.scanInto(rows, host, out)
	}
	for rows.Next() {
		var n sql.NullInt64
		if err := rows.Scan(&n); err != nil {
			return err
		}
		out[cell{}] += int(n.Int64)
	}
	return rows.Err()
}

// cubeRaw is the branch of a raw segment; host says its keys are URLs
// whose host is the key.
func cubeRaw(f Filter, dim string, c cols, sg segment) (string, []any, bool) {
	var (
		conds []string
		args  []any
	)
	if sg.lo >= 0 {
		// A segment of the plan: its bounds replace the filter's.
		conds, args = append(conds, "ts >= ?", "ts < ?"), append(args, sg.lo, sg.hi)
	} else {
		tc, ta := timeConds(f)
		conds, args = append(conds, tc...), append(args, ta...)
	}
	fc, fa := filterConds(f, true)
	conds, args = append(conds, fc...), append(args, fa...)
	keyExpr, host := "''", false
	switch dim {
	case "":
	case "orig":
		keyExpr = "orig"
		conds = append(conds, "orig <> ''")
	default:
		d, _ := dimensionNamed(dim)
		keyExpr, host = d.col, d.host
		conds = append(conds, d.col+" <> ''")
		if d.failuresOnly {
			conds = append(conds, "result IN ('fail', 'error')")
		}
	}
	hourExpr := "ts / " + strconv.FormatInt(hourMS, 10) + " * " + strconv.FormatInt(hourMS, 10)
	return branch(c, hourExpr, keyExpr, "COUNT(*)", "outcomes", conds), args, host
}
