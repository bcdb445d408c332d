package outcome

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStoreRecordBatch: the store's write path as the Writer drives
// it under load, batches of fresh outcomes (a signed call's and a verified
// call's, as the SIP redirect server records them) into SQLite. The
// metrics are the time and the process's CPU per outcome, rollup
// included (modernc's SQLite runs on the benchmark's own CPU).
func BenchmarkStoreRecordBatch(b *testing.B) {
	for _, size := range []int{300, 7} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			st, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "o.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			batch := make([]Outcome, size)
			n := 0
			b.ReportAllocs()
			cpu := cpuTime(b)
			for b.Loop() {
				for i := range batch {
					batch[i] = benchOutcome(n)
					n++
				}
				if err := st.RecordBatch(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/outcome")
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(n), "cpu-µs/outcome")
		})
	}
}

// benchOutcome is the i-th outcome of a run at some thousands of calls a
// second: a new key each, every other one a signature, the rest
// verifications, their times a millisecond apart.
func benchOutcome(i int) Outcome {
	o := verify("b"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Millisecond), func(o *Outcome) {
		o.Orig, o.Dest, o.Result, o.Verstat, o.Attest = "12155550121", "12155550131", "pass", "TN-Validation-Passed", "A"
		o.X5U, o.Source, o.Peer = "https://cr.example.net/sp.pem", SourceSIP, "192.0.2.1"
	})
	if i%2 == 1 {
		o.Kind, o.Result, o.Verstat, o.X5U = KindSign, "signed", "", ""
		o.Tenant, o.Customer, o.Rule = "default", "acme", "customer_number"
	}
	return o
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
