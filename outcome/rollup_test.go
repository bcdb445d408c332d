package outcome

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestRollupMatchesRaw writes random outcomes (with merges into existing
// rows that move them between hours and results, duplicate keys in one
// batch, gaps) to each backend, prunes at an unaligned time, and checks
// that every report and breakdown read from the rollup equals the same
// read from raw rows, over aligned, unaligned and open periods and every
// filter. A rollup row changed behind the store's back must be noticed
// (the negative control).
func TestRollupMatchesRaw(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			opts := b.open(t)
			st, err := Open(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			ss := st.(*sqlStore)
			ref := *ss
			ref.noRollup = true
			ctx := context.Background()
			started := time.Now()
			rng := rand.New(rand.NewPCG(1, 2))
			base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			// Three weeks: every level of the rollup is read.
			span := 21 * 24 * time.Hour
			pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
			random := func(id int) Outcome {
				o := Outcome{
					Time:     base.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Millisecond),
					System:   pick("pbx1", "pbx2", "node3"),
					UniqueID: fmt.Sprintf("u%d", id),
					Kind:     pick(KindVerify, KindVerify, KindSign),
					Orig:     pick("12155550001", "12155550002", "12155550003", ""),
					Attest:   pick("A", "B", "C", ""),
					Peer:     pick("10.0.0.1", "10.0.0.2", "otg-x", ""),
				}
				if o.Kind == KindVerify {
					o.Result = pick("pass", "pass", "fail", "none", "error", "")
					o.X5U = pick("https://cert.a.example/1.pem", "https://cert.a.example:8443/2.pem", "https://b.example/x.pem", "")
					o.SPC = pick("123A", "456B", "")
				} else {
					o.Result = pick("signed", "signed", "unsigned", "error")
					o.Tenant = pick("default", "blue", "green", "")
				}
				if o.Result == "fail" || o.Result == "error" || o.Result == "unsigned" || o.Result == "none" {
					o.ErrorName = pick("stale_iat", "x5u_fetch_failed", "bad_signature", "")
				}
				if rng.IntN(50) == 0 {
					o = Outcome{Time: o.Time, Until: o.Time.Add(time.Minute), System: o.System, UniqueID: o.UniqueID, Kind: KindGap}
				}
				return o
			}
			const n = 800
			var written []Outcome
			for i := 0; i < n; i += 50 {
				batch := make([]Outcome, 0, 51)
				for j := i; j < i+50; j++ {
					batch = append(batch, random(j))
				}
				// A key twice in one batch, the second a change.
				dup := random(i)
				dup.Kind = batch[0].Kind
				batch = append(batch, dup)
				if err := st.RecordBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				written = append(written, batch...)
			}
			// Merges: the same keys again, some earlier (moving hours), some
			// with a new verdict, some changing nothing, some one by one.
			for i := range 400 {
				o := written[rng.IntN(len(written))]
				switch i % 4 {
				case 0:
					o.Time = o.Time.Add(-time.Duration(rng.Int64N(int64(30 * time.Hour))))
				case 1:
					o.Result, o.ErrorName, o.Attest = pick("fail", "pass", "error"), pick("stale_iat", "other_err"), pick("A", "B")
				case 2:
					o.X5U, o.SPC, o.Peer = "https://late.example/z.pem", "999Z", "10.9.9.9"
				}
				if err := st.Record(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := st.Prune(ctx, base.Add(26*time.Hour+17*time.Minute+3*time.Second)); err != nil {
				t.Fatal(err)
			}
			cut := base.Add(26*time.Hour + 17*time.Minute + 3*time.Second)
			periods := [][2]time.Time{
				{},
				{base, base.Add(span)},
				{base.Add(24 * time.Hour), base.Add(72 * time.Hour)},
				{base.Add(7*time.Hour + 13*time.Minute), base.Add(80*time.Hour + 59*time.Minute)},
				{cut.Add(-time.Hour), cut.Add(50 * time.Hour)},
				{base.Add(30*time.Hour + 5*time.Minute), base.Add(30*time.Hour + 55*time.Minute)},
				{base.Add(-3 * 24 * time.Hour), base.Add(19*24*time.Hour + 5*time.Hour + 7*time.Minute)},
				{cut, time.Time{}},
			}
			filters := []Filter{
				{}, {System: "pbx2"}, {Kind: KindVerify}, {Kind: KindSign}, {Result: "fail"}, {ErrorName: "stale_iat"},
				{Attest: "A"}, {SPC: "123A"}, {Peer: "otg-x"}, {Tenant: "blue"}, {Tenant: "green", Peer: "10.0.0.2"}, {X5UHost: "cert.a.example"}, {Orig: "12155550002"},
				{SPC: "456B", Peer: "10.0.0.1"}, {System: "pbx1", Kind: KindVerify, SPC: "123A"},
			}
			check := func(stopEarly bool) (diffs int) {
				for _, p := range periods {
					for fi, f := range filters {
						f.Since, f.Until = p[0], p[1]
						got, err := ss.Report(ctx, f)
						if err != nil {
							t.Fatal(err)
						}
						want, err := ref.Report(ctx, f)
						if err != nil {
							t.Fatal(err)
						}
						if !reflect.DeepEqual(got, want) {
							diffs++
							t.Logf("report %+v\n rollup %+v\n    raw %+v", f, got, want)
							if stopEarly {
								return diffs
							}
						}
						// Breakdowns: every dimension, under the filters that
						// pick a different path each (the rest is Report's).
						for _, by := range []GroupBy{BySPC, ByX5UHost, ByPeer, BySystem, ByOrig, ByTenant} {
							if fi%2 == 1 {
								break
							}
							got, err := ss.Groups(ctx, f, by)
							if err != nil {
								t.Fatal(err)
							}
							want, err := ref.Groups(ctx, f, by)
							if err != nil {
								t.Fatal(err)
							}
							if !reflect.DeepEqual(got, want) {
								diffs++
								t.Logf("groups %s %+v\n rollup %+v\n    raw %+v", by, f, got, want)
							}
						}
					}
				}
				return diffs
			}
			t.Logf("written in %v", time.Since(started))
			if d := check(false); d != 0 {
				t.Fatalf("%d reads differ between the rollup and raw rows", d)
			}
			t.Logf("checked in %v", time.Since(started))
			all, err := ref.Report(ctx, Filter{})
			if err != nil || all.Total < n/3 || all.Inbound.Failures == 0 || len(all.TopOrigins) == 0 {
				t.Fatalf("the data set is too thin to prove anything: %+v %v", all, err)
			}
			// Negative control: one day bucket off by one is seen.
			if _, err := ss.db.ExecContext(ctx, ss.rebind(`UPDATE outcome_rollup SET n = n + 1 WHERE dim = '' AND width_ms = ? AND bucket_ms = ? AND kind = ?`),
				dayMS, ms(base.Add(48*time.Hour)), KindVerify); err != nil {
				t.Fatal(err)
			}
			if d := check(true); d == 0 {
				t.Fatal("a corrupted rollup row went unnoticed")
			}
		})
	}
}

// TestRollupBackfill: a store that had rows before the rollup existed
// (migration 14 on an old database) gets them counted once.
func TestRollupBackfill(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			opts := b.open(t)
			st, err := Open(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			seed(t, st)
			ss := st.(*sqlStore)
			ctx := context.Background()
			before, err := ss.Report(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			// Back to version 13: the rollup gone, as on an old database.
			for _, q := range []string{`DROP TABLE outcome_rollup`, `DELETE FROM schema_migrations WHERE version = 14`} {
				if _, err := ss.db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			st.Close()
			st, err = Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			after, err := st.Report(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, after) || after.Total != 7 {
				t.Errorf("after backfill\n got %+v\nwant %+v", after, before)
			}
		})
	}
}

// TestQueryKeyset: paging with After visits every row once, in Query's
// order, and agrees with Offset.
func TestQueryKeyset(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, err := Open(context.Background(), b.open(t))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			var batch []Outcome
			for i := range 95 {
				// Ten rows share each millisecond: ties are ordered by key.
				batch = append(batch, verify(fmt.Sprintf("k%02d", i), t0.Add(time.Duration(i/10)*time.Millisecond), func(o *Outcome) { o.Result = "pass" }))
			}
			if err := st.RecordBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
			byOffset, err := st.Query(ctx, Filter{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			var byKey []Outcome
			f := Filter{Limit: 7}
			for {
				page, err := st.Query(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				byKey = append(byKey, page...)
				if len(page) < f.Limit {
					break
				}
				f.After = CursorOf(page[len(page)-1])
			}
			if len(byOffset) != 95 || !reflect.DeepEqual(ids(byKey), ids(byOffset)) {
				t.Errorf("keyset pages %v\noffset %v", ids(byKey), ids(byOffset))
			}
		})
	}
}

// TestPlan: the segments of a period tile it exactly, in order, each
// rollup segment on whole buckets of its width, raw rows only for the
// partial hours at either end.
func TestPlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		lo := int64(1_700_000_000_000) + rng.Int64N(60*dayMS)
		hi := lo + rng.Int64N(40*dayMS)
		var f Filter
		if rng.IntN(10) > 0 {
			f.Since = fromMS(lo)
		} else {
			lo = 0
		}
		if rng.IntN(10) > 0 {
			f.Until = fromMS(hi)
		} else {
			hi = openEnd
		}
		byHour := rng.IntN(4) == 0
		segs := plan(f, byHour)
		at := lo
		for _, s := range segs {
			if s.lo != at || s.hi <= s.lo {
				t.Fatalf("[%d, %d) byHour=%v: %+v does not tile", lo, hi, byHour, segs)
			}
			noWholeHour := ceilTo(lo, hourMS) >= floorTo(hi, hourMS)
			if s.width == 0 && !noWholeHour && !(s.lo == lo && s.hi <= ceilTo(lo, hourMS)) && !(s.hi == hi && s.lo >= floorTo(hi, hourMS)) {
				t.Fatalf("[%d, %d): raw segment %+v beyond the partial hours", lo, hi, s)
			}
			if s.width != 0 && (s.lo%s.width != 0 || s.hi%s.width != 0 || byHour && s.width != hourMS) {
				t.Fatalf("[%d, %d) byHour=%v: segment %+v not on its buckets", lo, hi, byHour, s)
			}
			at = s.hi
		}
		if lo < hi && at != hi {
			t.Fatalf("[%d, %d): segments end at %d", lo, hi, at)
		}
	}
}
