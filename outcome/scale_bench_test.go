package outcome_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/outcome"
	"github.com/stirgate/stirgate/outcome/web"
)

// BenchmarkDashboardScale seeds STIRGATE_SCALE_ROWS outcomes (default 10
// million: a month at ~4 calls/s) into SQLite and into PostgreSQL, then
// times every read the dashboard makes, the whole /dashboard page, the
// calls drill-down (first pages with filters and a page a million rows
// deep), the write path at the Writer's batch size, and a retention run.
// `make bench-scale` runs it; a table of the times is printed at the end.
//
//	STIRGATE_SCALE_ROWS=1000000 go test -run '^$' -bench DashboardScale -benchtime 3x -timeout 2h ./outcome/
func BenchmarkDashboardScale(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("STIRGATE_SCALE_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10000 {
			b.Fatalf("STIRGATE_SCALE_ROWS=%q: want a number of rows ≥ 10000", v)
		}
	}
	// "Now" is not on an hour: every period has raw edges to read.
	end := time.Date(2026, 12, 1, 9, 17, 23, 0, time.UTC)
	nowFn := func() time.Time { return end }
	table := map[string]map[string]time.Duration{}
	var names []string
	rates, prunedN := map[string]float64{}, map[string]int64{}
	record := func(store, name string, d time.Duration) {
		if table[name] == nil {
			table[name] = map[string]time.Duration{}
			names = append(names, name)
		}
		table[name][store] = d
	}
	rollupRows := map[string]int{}
	backends := []string{"sqlite", "postgres"}
	if v := os.Getenv("STIRGATE_SCALE_STORES"); v != "" {
		backends = strings.Split(v, ",") // one of them, to measure a change
	}
	for _, backend := range backends {
		opts := outcome.Options{Path: filepath.Join(b.TempDir(), "outcomes.db"), Now: nowFn}
		if backend == "postgres" {
			opts = outcome.Options{DSN: outcome.NewPostgresDB(b), Now: nowFn}
		}
		ctx := context.Background()
		st, err := outcome.Open(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := outcome.SeedScale(ctx, st, n, end); err != nil {
			b.Fatalf("%s: seeding: %v", backend, err)
		}
		seeding := time.Since(t0)
		record(backend, "seed (rows and rollup, bulk)", seeding)
		b.Logf("%s: seeded %d rows in %v", backend, n, seeding)
		raw, err := outcome.RawCount(st)
		if err != nil {
			b.Fatal(err)
		}
		if r, err := st.Report(ctx, outcome.Filter{}); err != nil || r.Total != raw {
			b.Fatalf("%s: the rollup counts %d calls, the rows %d (%v)", backend, r.Total, raw, err)
		}
		if rollupRows[backend], err = outcome.RollupRows(st); err != nil {
			b.Fatal(err)
		}

		h := web.Handler(web.Options{Store: st, Now: nowFn, Certs: func() []web.CertInfo {
			return []web.CertInfo{{Name: "sp", NotAfter: end.Add(90 * 24 * time.Hour)}}
		}})
		get := func(path string) func() error {
			return func() error {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != http.StatusOK {
					return fmt.Errorf("GET %s: %d %s", path, rec.Code, rec.Body.String())
				}
				io.Copy(io.Discard, rec.Body)
				return nil
			}
		}
		type q struct {
			name string
			run  func() error
		}
		var qs []q
		for _, rg := range []struct {
			label string
			d     time.Duration
		}{{"1h", time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}} {
			f := outcome.Filter{Since: end.Add(-rg.d)}
			in := f
			in.Kind = outcome.KindVerify
			qs = append(qs, q{"report " + rg.label, func() error { _, err := st.Report(ctx, f); return err }})
			for _, g := range []struct {
				by outcome.GroupBy
				f  outcome.Filter
			}{{outcome.BySPC, in}, {outcome.ByX5UHost, in}, {outcome.ByPeer, f}, {outcome.BySystem, f}} {
				qs = append(qs, q{"groups " + string(g.by) + " " + rg.label, func() error { _, err := st.Groups(ctx, g.f, g.by); return err }})
			}
			sys := f
			sys.System = "node2"
			qs = append(qs, q{"report system=node2 " + rg.label, func() error { _, err := st.Report(ctx, sys); return err }})
			qs = append(qs, q{"page /dashboard " + rg.label, get("/dashboard?since=" + rg.d.String())})
		}
		month := "since=720h"
		qs = append(qs,
			q{"page /dashboard/calls error=stale_iat", get("/dashboard/calls?" + month + "&kind=verify&error=stale_iat")},
			q{"page /dashboard/calls spc=101B result=fail", get("/dashboard/calls?" + month + "&kind=verify&spc=101B&result=fail")},
			q{"page /dashboard/calls x5u_host", get("/dashboard/calls?" + month + "&x5u_host=cert.signer-110k.example")},
			q{"page /dashboard/calls system=node3", get("/dashboard/calls?" + month + "&system=node3")},
		)
		// A page a million rows deep (three days back at 10 million; half
		// way at fewer rows): the cursor of a row there, as the Next link
		// carries it.
		depth := min(1e6, float64(n)/2)
		deep := outcome.Filter{Since: end.Add(-30 * 24 * time.Hour), Limit: 51}
		mid, err := st.Query(ctx, outcome.Filter{Since: end.Add(-30 * 24 * time.Hour), Until: end.Add(-time.Duration(float64(30*24*time.Hour) * depth / float64(n))), Limit: 1})
		if err != nil || len(mid) != 1 {
			b.Fatalf("deep cursor: %v %d", err, len(mid))
		}
		deep.After = outcome.CursorOf(mid[0])
		qs = append(qs, q{"calls page deep (keyset, 1M rows back)", func() error {
			os, err := st.Query(ctx, deep)
			if err == nil && len(os) != 51 {
				err = fmt.Errorf("deep page: %d rows", len(os))
			}
			return err
		}})
		for _, q := range qs {
			var took time.Duration
			b.Run(backend+"/"+strings.ReplaceAll(q.name, " ", "_"), func(b *testing.B) {
				took = 0
				runs := 0
				for b.Loop() {
					t := time.Now()
					if err := q.run(); err != nil {
						b.Fatal(err)
					}
					took += time.Since(t)
					runs++
				}
				took /= time.Duration(runs)
			})
			record(backend, q.name, took)
		}

		// The write path: new calls at the Writer's batch size, one in ten a
		// merge into a call already stored (the hangup after the verdict).
		const batch = 512
		var written int
		b.Run(backend+"/write_batch_512", func(b *testing.B) {
			var spent time.Duration
			var rows int
			for b.Loop() {
				os := make([]outcome.Outcome, 0, batch)
				for i := range batch {
					k := written + i
					o := outcome.Outcome{Time: end.Add(time.Duration(k) * time.Millisecond), System: "node1", UniqueID: "w" + strconv.Itoa(k),
						Kind: outcome.KindVerify, Result: "pass", Attest: "A", SPC: "101B", X5U: "https://cert.signer-101b.example/0.pem", Peer: "192.0.2.10"}
					if i%10 == 9 {
						o.UniqueID, o.HangupCause, o.Time = "w"+strconv.Itoa(max(k-100, 0)), "16", o.Time.Add(time.Minute)
					}
					os = append(os, o)
				}
				written += batch
				t := time.Now()
				if err := st.RecordBatch(ctx, os); err != nil {
					b.Fatal(err)
				}
				spent += time.Since(t)
				rows += batch
			}
			b.ReportMetric(float64(rows)/spent.Seconds(), "outcomes/s")
			record(backend, fmt.Sprintf("write: RecordBatch of %d", batch), spent/time.Duration(rows/batch))
			rates[backend] = float64(rows) / spent.Seconds()
		})

		// Retention: the oldest day goes, in batches, rollup included.
		t0 = time.Now()
		pruned, err := st.Prune(ctx, end.Add(-29*24*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		record(backend, "prune the oldest day", time.Since(t0))
		prunedN[backend] = pruned
		st.Close()
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n%d outcomes over 30 days, now = %s (periods end unaligned)\n\n", n, end.Format(time.RFC3339))
	fmt.Fprintf(&out, "| query | SQLite | PostgreSQL |\n|---|---:|---:|\n")
	for _, name := range names {
		fmt.Fprintf(&out, "| %s | %s | %s |\n", name, short(table[name]["sqlite"]), short(table[name]["postgres"]))
	}
	for _, be := range []string{"sqlite", "postgres"} {
		fmt.Fprintf(&out, "\n%s: %d rollup rows; writes %.0f outcomes/s (batches of 512, one in ten a merge); pruned %d rows",
			be, rollupRows[be], rates[be], prunedN[be])
	}
	fmt.Println(out.String())
}

func short(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < 10*time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(time.Second).String()
}
