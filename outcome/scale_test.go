package outcome

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The scale data set of BenchmarkDashboardScale: a realistic month of
// outcomes, loaded in bulk (COPY on PostgreSQL, multi-row INSERTs in one
// transaction on SQLite) with its rollup computed on the way, as the
// write path would have left it.

// mix is the shape of the traffic: weights are Zipf-like, as carriers
// and trunks are in practice (a few carry most calls).
type mix struct {
	rng     *rand.Rand
	systems []string
	signers []string // index i: SPC and certificate host of signer i
	peers   []string
	fails   []string
	errs    []string
	unsign  []string
	spoofed []string // the failing origins come from a small pool
	zipfSig *rand.Zipf
	zipfPer *rand.Zipf
	zipfSpf *rand.Zipf
	zipfErr *rand.Zipf
}

func newMix(seed uint64) *mix {
	m := &mix{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	m.systems = []string{"node1", "node2", "node3", "pbx-east"}
	for i := range 25 {
		m.signers = append(m.signers, strconv.Itoa(100+i)+string(rune('A'+i%26)))
	}
	for i := range 40 {
		m.peers = append(m.peers, fmt.Sprintf("192.0.2.%d", 10+i))
	}
	m.fails = []string{"stale_iat", "x5u_fetch_failed", "bad_signature", "cert_not_trusted", "orig_mismatch",
		"cert_expired", "invalid_passport", "dest_mismatch", "x5u_not_https", "cert_no_tn_auth"}
	m.errs = []string{"internal_error", "store_timeout", "cert_cache_miss"}
	m.unsign = []string{"tn_not_authorized", "no_signing_cert", "invalid_orig"}
	for i := range 5000 {
		m.spoofed = append(m.spoofed, fmt.Sprintf("1%03d555%04d", 200+i%700, i))
	}
	src := rand.New(rand.NewPCG(seed+1, seed+2))
	m.zipfSig = rand.NewZipf(src, 1.2, 2, uint64(len(m.signers)-1))
	m.zipfPer = rand.NewZipf(src, 1.1, 3, uint64(len(m.peers)-1))
	m.zipfSpf = rand.NewZipf(src, 1.05, 10, uint64(len(m.spoofed)-1))
	m.zipfErr = rand.NewZipf(src, 1.3, 1, uint64(len(m.fails)-1))
	return m
}

func (m *mix) outcome(i int, at time.Time) Outcome {
	r := m.rng
	o := Outcome{Time: at, System: m.systems[min(r.IntN(10), 3)%len(m.systems)], Source: SourceSIP,
		UniqueID: strconv.FormatInt(at.Unix(), 10) + "." + strconv.Itoa(i)}
	o.Dest = fmt.Sprintf("1%010d", r.Int64N(1e10))
	o.Peer = m.peers[m.zipfPer.Uint64()]
	if i%2000 == 1999 {
		o.Kind, o.Until, o.Source = KindGap, at.Add(30*time.Second), SourceAMI
		o.Peer, o.Dest = "", ""
		return o
	}
	attest := func() string {
		switch p := r.IntN(10); {
		case p < 7:
			return "A"
		case p < 9:
			return "B"
		}
		return "C"
	}
	if r.IntN(10) < 6 {
		o.Kind, o.Direction = KindVerify, "inbound"
		o.Orig = fmt.Sprintf("1%010d", r.Int64N(1e10))
		s := m.signers[m.zipfSig.Uint64()]
		o.SPC, o.X5U = s, "https://cert.signer-"+strings.ToLower(s)+".example/"+strconv.Itoa(r.IntN(2))+".pem"
		switch p := r.IntN(100); {
		case p < 82:
			o.Result, o.Attest, o.Verstat, o.SIPCode = "pass", attest(), "TN-Validation-Passed", 0
		case p < 91:
			o.Result, o.ErrorName, o.SPC, o.X5U, o.SIPCode = "none", "no_identity", "", "", 0
		case p < 98:
			o.Result, o.Attest, o.ErrorName, o.Verstat, o.SIPCode = "fail", attest(), m.fails[m.zipfErr.Uint64()], "TN-Validation-Failed", 438
			o.Orig = m.spoofed[m.zipfSpf.Uint64()]
		default:
			o.Result, o.ErrorName, o.SIPCode = "error", m.errs[r.IntN(len(m.errs))], 500
		}
		return o
	}
	o.Kind, o.Direction = KindSign, "outbound"
	o.Orig = fmt.Sprintf("1%010d", r.Int64N(1e10))
	o.Attest, o.SPC, o.X5U = attest(), "999Z", "https://certs.operator.example/sign.pem"
	// A wholesale signer: three tenants, a customer each (FCC 24-120).
	t := []string{"default", "blue", "green"}[r.IntN(3)]
	o.Tenant, o.Customer, o.Rule = t, "cust-"+t, "customer_number"
	switch p := r.IntN(100); {
	case p < 95:
		o.Result = "signed"
	case p < 99:
		o.Result, o.ErrorName, o.Attest = "unsigned", m.unsign[r.IntN(len(m.unsign))], ""
	default:
		o.Result, o.ErrorName, o.Attest, o.SIPCode = "error", m.errs[r.IntN(len(m.errs))], "", 500
	}
	return o
}

// SeedScale loads n outcomes spread evenly over the 30 days before end,
// in time order, with their rollup. It bypasses RecordBatch: the rows are
// new, so the rollup is the count of what is loaded, flushed day by day
// with the day's rows.
func SeedScale(ctx context.Context, st Store, n int, end time.Time) error {
	s := st.(*sqlStore)
	m := newMix(uint64(n))
	start := end.Add(-30 * 24 * time.Hour)
	step := float64(30*24*time.Hour) / float64(n)
	l, err := s.newLoader(ctx)
	if err != nil {
		return err
	}
	defer l.close()
	d := deltas{}
	day := int64(math.MinInt64)
	// flush writes the rollup rows whose buckets ended by upTo (a day
	// flushes its hours and itself; a week waits for its last day).
	flush := func(upTo int64) error {
		var rows [][]any
		for k, v := range d {
			if k.bucket+k.width <= upTo {
				rows = append(rows, []any{k.width, k.bucket, k.dim, k.dkey, k.system, k.kind, k.result, k.attest, k.errorName, v})
				delete(d, k)
			}
		}
		if err := l.load(ctx, "outcome_rollup", rollupCols, rows); err != nil {
			return err
		}
		return l.checkpoint(ctx)
	}
	batch := make([][]any, 0, 1000)
	for i := range n {
		at := start.Add(time.Duration(float64(i) * step)).Truncate(time.Millisecond)
		o := m.outcome(i, at)
		f := factOf(o)
		if dd := floorTo(f.ts, dayMS); dd != day {
			if len(d) > 0 {
				if err := flush(dd); err != nil {
					return err
				}
			}
			day = dd
		}
		d.add(&f, 1)
		batch = append(batch, appendUpsertArgs(make([]any, 0, upsertCols), o))
		if len(batch) == cap(batch) {
			if err := l.load(ctx, "outcomes", outcomeCols, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := l.load(ctx, "outcomes", outcomeCols, batch); err != nil {
		return err
	}
	if err := flush(openEnd); err != nil {
		return err
	}
	return l.commit(ctx)
}

var (
	outcomeCols = strings.Fields(strings.ReplaceAll(`system, uniqueid, kind, ts, until_ts, linkedid, direction, orig, dest,
	result, verstat, attest, origid, sip_code, error_name, reason, x5u, spc, hangup_cause, source,
	peer, profile, mode, client, div, rcd_nam, rcd_crn, tenant, customer, rule`, ",", " "))
	rollupCols = []string{"width_ms", "bucket_ms", "dim", "dkey", "system", "kind", "result", "attest", "error_name", "n"}
)

// loader writes rows in bulk: COPY on PostgreSQL, 100-row prepared
// INSERTs in one transaction per day on SQLite.
type loader struct {
	s    *sqlStore
	conn *sql.Conn
	tx   *sql.Tx
	pg   *pgx.Conn
}

func (s *sqlStore) newLoader(ctx context.Context) (*loader, error) {
	l := &loader{s: s}
	var err error
	if l.conn, err = s.db.Conn(ctx); err != nil {
		return nil, err
	}
	if s.postgres {
		err = l.conn.Raw(func(dc any) error {
			l.pg = dc.(*stdlib.Conn).Conn()
			return nil
		})
		return l, err
	}
	// A bulk load's own settings: a large page cache for this connection.
	for _, q := range []string{`PRAGMA cache_size = -262144`, `PRAGMA temp_store = MEMORY`} {
		if _, err := l.conn.ExecContext(ctx, q); err != nil {
			return nil, err
		}
	}
	l.tx, err = l.conn.BeginTx(ctx, nil)
	return l, err
}

func (l *loader) load(ctx context.Context, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if l.pg != nil {
		_, err := l.pg.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
		return err
	}
	const per = 100
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	var full *sql.Stmt
	for len(rows) > 0 {
		k := min(per, len(rows))
		q := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES ` + strings.TrimSuffix(strings.Repeat(one+", ", k), ", ")
		var stmt *sql.Stmt
		var err error
		if k == per && full != nil {
			stmt = full
		} else if stmt, err = l.tx.PrepareContext(ctx, q); err != nil {
			return err
		}
		args := make([]any, 0, k*len(cols))
		for _, r := range rows[:k] {
			args = append(args, r...)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return err
		}
		if k == per {
			full = stmt
		} else {
			stmt.Close()
		}
		rows = rows[k:]
	}
	if full != nil {
		full.Close()
	}
	return nil
}

// checkpoint commits a day's rows on SQLite and begins the next day's
// transaction: a month in one transaction would grow the WAL without
// bound (no checkpoint can run inside it) and spill the page cache.
func (l *loader) checkpoint(ctx context.Context) error {
	if l.tx == nil {
		return nil
	}
	if err := l.tx.Commit(); err != nil {
		return err
	}
	var err error
	l.tx, err = l.conn.BeginTx(ctx, nil)
	return err
}

func (l *loader) commit(ctx context.Context) error {
	if l.tx != nil {
		if err := l.tx.Commit(); err != nil {
			return err
		}
		l.tx = nil
	}
	// Statistics, as a running database has them (autovacuum, optimize).
	q := `ANALYZE`
	if l.pg != nil {
		q = `VACUUM ANALYZE`
	}
	_, err := l.conn.ExecContext(ctx, q)
	return err
}

func (l *loader) close() {
	if l.tx != nil {
		l.tx.Rollback()
	}
	l.conn.Close()
}
