package outcome

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRecordInsertFirst: a batch that mixes new keys with keys an earlier
// batch wrote (other fields, an earlier time that moves the row's hour, a
// new verdict, a later hangup cause), and a key twice, leaves the rows
// and the rollup exactly as the merge of every key (the write path before
// insert-first) leaves them; and the rollup still answers as raw rows do.
// The batch is long enough to take several pieces, each of them holding
// both new and existing keys.
func TestRecordInsertFirst(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			open := func() *sqlStore {
				st, err := Open(ctx, b.open(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st.(*sqlStore)
			}
			st, old := open(), open()
			first, second := mixedBatches()
			for _, batch := range [][]Outcome{first, second} {
				if err := st.RecordBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				if err := recordMergeAll(ctx, old, batch); err != nil {
					t.Fatal(err)
				}
			}
			got, want := all(t, st), all(t, old)
			if len(got) != 300+101 || len(want) != len(got) {
				t.Fatalf("%d rows, the merge of every key %d; want %d", len(got), len(want), 300+101)
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("row %d differs from the merge of every key\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
			if g, w := rollupRows(t, st), rollupRows(t, old); !reflect.DeepEqual(g, w) {
				t.Fatalf("rollup differs from the merge of every key\n got %v\nwant %v", g, w)
			}
			raw := *st
			raw.noRollup = true
			for _, f := range []Filter{{}, {Since: t0, Until: t0.Add(3 * time.Hour)}, {Peer: "192.0.2.9"}, {Tenant: "blue"}} {
				g, err := st.Report(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				w, err := raw.Report(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("report %+v\n rollup %+v\n    raw %+v", f, g, w)
				}
			}
			// The merges did merge: an AMI hangup cause joined a verified
			// call, whose numbers stayed as first written.
			rows, err := st.Query(ctx, Filter{Orig: "12155550100"})
			if err != nil || len(rows) != 1 || rows[0].HangupCause != "16" || rows[0].Source != SourceSIP {
				t.Errorf("merged row %+v, %v", rows, err)
			}
		})
	}
}

// mixedBatches are two batches: the first of 300 new rows, the second of
// 100 new rows interleaved with 150 merges into the first's rows and one
// key written twice.
func mixedBatches() (first, second []Outcome) {
	for i := range 300 {
		first = append(first, benchOutcome(i))
	}
	first[0].Orig = "12155550100"
	for i := range 100 {
		second = append(second, benchOutcome(1000+i))
		for _, j := range []int{3 * i, 3*i + 1} {
			if j%4 == 3 {
				continue // some keys of the first batch left alone
			}
			o := first[j]
			switch j % 4 {
			case 0:
				// The AMI listener's hangup: its own source and raw number.
				o = Outcome{Time: o.Time.Add(30 * time.Second), System: o.System, UniqueID: o.UniqueID, Kind: o.Kind,
					Orig: "+1 215 555 0100", HangupCause: "16", Source: SourceAMI}
			case 1:
				// Earlier, another hour; another verdict and tenant.
				o.Time = o.Time.Add(-90 * time.Minute)
				o.Result, o.ErrorName, o.Tenant, o.Peer = "error", "timeout", "blue", "192.0.2.9"
			case 2:
				o.Attest, o.X5U = "B", "https://other.example/b.pem"
			}
			second = append(second, o)
		}
	}
	// A key twice: a new one, then merged in the same batch.
	dup := benchOutcome(5000)
	again := dup
	again.Result, again.ErrorName = "fail", "stale_iat"
	second = append(second[:50], append([]Outcome{dup}, second[50:]...)...)
	return first, append(second, again)
}

// recordMergeAll is the write path before insert-first, the reference:
// every key is read (uncounted), then upserted (counted).
func recordMergeAll(ctx context.Context, s *sqlStore, os []Outcome) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r := recorder{s: s, tx: tx, d: deltas{}}
	if err := eachPiece(ctx, os, r.merge); err != nil {
		return err
	}
	if err := s.applyDeltas(ctx, tx, r.d); err != nil {
		return err
	}
	return tx.Commit()
}

// rollupRows is the rollup table, one string a row, sorted.
func rollupRows(t *testing.T, s *sqlStore) []string {
	t.Helper()
	rows, err := s.db.Query(`SELECT dim, width_ms, bucket_ms, system, kind, result, attest, error_name, dkey, n FROM outcome_rollup`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		v := make([]any, 10)
		p := make([]any, len(v))
		for i := range v {
			p[i] = &v[i]
		}
		if err := rows.Scan(p...); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(fmt.Sprintln(v...)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
