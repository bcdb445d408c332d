package outcome

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

type opener func(t *testing.T) Options

var backends = []struct {
	name string
	open opener
}{
	{"sqlite", func(t *testing.T) Options {
		return Options{Path: filepath.Join(t.TempDir(), "sub", "outcomes.db")}
	}},
	{"postgres", func(t *testing.T) Options {
		return Options{DSN: newPostgresDB(t)}
	}},
}

// TestStore runs one suite against every backend: SQLite and a real
// PostgreSQL must agree row for row.
func TestStore(t *testing.T) {
	suite := []struct {
		name string
		run  func(t *testing.T, st Store, opts Options)
	}{
		{"merge", testMerge},
		{"idempotent", testIdempotent},
		{"query filters", testQuery},
		{"report", testReport},
		{"groups", testGroups},
		{"retention", testRetention},
		{"migrations rerun", testMigrations},
		{"batch is atomic", testBatchAtomic},
		{"writer spills and replays", testWriterSpill},
		{"tenants", testTenants},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range suite {
				t.Run(tc.name, func(t *testing.T) {
					opts := b.open(t)
					opts.Now = func() time.Time { return t0.Add(48 * time.Hour) }
					st, err := Open(context.Background(), opts)
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					t.Cleanup(func() { st.Close() })
					tc.run(t, st, opts)
				})
			}
		})
	}
}

func verify(id string, at time.Time, mod func(*Outcome)) Outcome {
	o := Outcome{Time: at, System: "pbx1", UniqueID: id, Kind: KindVerify, Source: SourceAMI}
	if mod != nil {
		mod(&o)
	}
	return o
}

func all(t *testing.T, st Store) []Outcome {
	t.Helper()
	got, err := st.Query(context.Background(), Filter{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func testMerge(t *testing.T, st Store, _ Options) {
	ctx := context.Background()
	first := verify("1700000000.1", t0, func(o *Outcome) {
		o.LinkedID, o.Direction, o.Orig, o.Dest = "1700000000.1", "inbound", "12155550121", "12155550131"
		o.Result, o.Verstat, o.Attest, o.OrigID = "pass", "TN-Validation-Passed", "A", "origid-1"
		o.X5U, o.SPC = "https://cert.example.net/a.pem", "1234"
		o.Peer, o.Profile, o.Mode, o.Client = "192.0.2.7", "sippy", "auto", "acme"
		o.Div, o.RCDNam, o.RCDCrn = "12155550131,12155550141", "ACME Corp", "Appointment reminder"
		o.Tenant, o.Customer, o.Rule = "blue", "acme", "customer_number"
	})
	// Hangup arrives later and knows only the cause; its time is later.
	hangup := Outcome{Time: t0.Add(30 * time.Second), System: "pbx1", UniqueID: "1700000000.1", Kind: KindVerify, HangupCause: "16"}
	// The AMI listener's copy: raw caller ID, its own source, a later time,
	// the same verdict. Identity fields stay as first written.
	fromAMI := first
	fromAMI.Time, fromAMI.Orig, fromAMI.Source, fromAMI.LinkedID = t0.Add(20*time.Second), "+1 215 555 0121", SourceNative, ""
	for _, o := range []Outcome{first, hangup, fromAMI, first} {
		if err := st.Record(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	got := all(t, st)
	want := first
	want.HangupCause = "16"
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func testIdempotent(t *testing.T, st Store, _ Options) {
	ctx := context.Background()
	o := verify("a", t0, func(o *Outcome) { o.Result = "fail"; o.ErrorName = "stale_iat"; o.SIPCode = 403 })
	for range 3 {
		if err := st.RecordBatch(ctx, []Outcome{o, o}); err != nil {
			t.Fatal(err)
		}
	}
	// Same uniqueid, other kind or other system: distinct records.
	sign := o
	sign.Kind = KindSign
	other := o
	other.System = "pbx2"
	if err := st.RecordBatch(ctx, []Outcome{sign, other}); err != nil {
		t.Fatal(err)
	}
	if got := all(t, st); len(got) != 3 {
		t.Fatalf("got %d rows, want 3: %+v", len(got), got)
	}
}

func seed(t *testing.T, st Store) {
	t.Helper()
	os := []Outcome{
		verify("p1", t0, func(o *Outcome) { o.Result, o.Attest, o.Orig = "pass", "A", "12155550001" }),
		verify("p2", t0.Add(10*time.Minute), func(o *Outcome) { o.Result, o.Attest, o.Orig = "pass", "B", "12155550002" }),
		verify("f1", t0.Add(20*time.Minute), func(o *Outcome) {
			o.Result, o.Attest, o.ErrorName, o.Orig = "fail", "A", "x5u_fetch_failed", "12155550009"
			o.X5U = "https://certs.bad.example/one.pem"
		}),
		verify("f2", t0.Add(70*time.Minute), func(o *Outcome) {
			o.Result, o.Attest, o.ErrorName, o.Orig = "fail", "C", "x5u_fetch_failed", "12155550009"
			o.X5U = "https://certs.bad.example:8443/two.pem"
		}),
		verify("f3", t0.Add(80*time.Minute), func(o *Outcome) {
			o.Result, o.ErrorName, o.Orig = "fail", "stale_iat", "12155550008"
			o.X5U = "https://other.example/c.pem"
		}),
		verify("n1", t0.Add(90*time.Minute), func(o *Outcome) { o.Result, o.ErrorName = "none", "no_identity" }),
		{Time: t0.Add(100 * time.Minute), System: "pbx1", UniqueID: "s1", Kind: KindSign, Result: "unsigned", Source: SourceAGI},
		{Time: t0.Add(5 * time.Minute), Until: t0.Add(6 * time.Minute), System: "pbx1", UniqueID: "gap-1", Kind: KindGap, Source: SourceAMI},
	}
	if err := st.RecordBatch(context.Background(), os); err != nil {
		t.Fatal(err)
	}
}

func ids(os []Outcome) []string {
	var s []string
	for _, o := range os {
		s = append(s, o.UniqueID)
	}
	return s
}

func testQuery(t *testing.T, st Store, _ Options) {
	seed(t, st)
	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"all newest first, no gaps", Filter{}, []string{"s1", "n1", "f3", "f2", "f1", "p2", "p1"}},
		{"since", Filter{Since: t0.Add(70 * time.Minute)}, []string{"s1", "n1", "f3", "f2"}},
		{"until excludes", Filter{Until: t0.Add(20 * time.Minute)}, []string{"p2", "p1"}},
		{"result", Filter{Result: "fail"}, []string{"f3", "f2", "f1"}},
		{"error", Filter{ErrorName: "x5u_fetch_failed"}, []string{"f2", "f1"}},
		{"attest", Filter{Attest: "A"}, []string{"f1", "p1"}},
		{"limit", Filter{Limit: 2}, []string{"s1", "n1"}},
		{"kind gap", Filter{Kind: KindGap}, []string{"gap-1"}},
		{"kind sign", Filter{Kind: KindSign}, []string{"s1"}},
		{"other system", Filter{System: "pbx9"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.Query(context.Background(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(got); !reflect.DeepEqual(g, tc.want) {
				t.Errorf("got %v, want %v", g, tc.want)
			}
		})
	}
	gaps, _ := st.Query(context.Background(), Filter{Kind: KindGap})
	if len(gaps) != 1 || !gaps[0].Until.Equal(t0.Add(6*time.Minute)) {
		t.Errorf("gap lost its end: %+v", gaps)
	}
}

func testReport(t *testing.T, st Store, _ Options) {
	seed(t, st)
	r, err := st.Report(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := &Report{
		Total:       7,
		ByResult:    []Count{{"fail", 3}, {"pass", 2}, {"none", 1}, {"unsigned", 1}},
		ByAttest:    []Count{{"A", 2}, {"B", 1}, {"C", 1}},
		ByNode:      []Count{{"pbx1", 7}},
		ByError:     []Count{{"x5u_fetch_failed", 2}, {"no_identity", 1}, {"stale_iat", 1}},
		TopX5UHosts: []Count{{"certs.bad.example", 2}, {"other.example", 1}},
		TopOrigins:  []Count{{"12155550009", 2}, {"12155550008", 1}},
		Unsigned:    2, UnsignedShare: 2.0 / 7,
		// The directions apart; failure reasons are shares of failures
		// (no_identity is a call without a signature, not a failure).
		Inbound: Side{Total: 6, ByResult: []Count{{"fail", 3}, {"pass", 2}, {"none", 1}}, ByAttest: []Count{{"A", 2}, {"B", 1}, {"C", 1}},
			Succeeded: 2, SuccessShare: 2.0 / 6, Unsigned: 1, UnsignedShare: 1.0 / 6,
			Failures: 3, ByError: []Count{{"x5u_fetch_failed", 2}, {"stale_iat", 1}}},
		Outbound: Side{Total: 1, ByResult: []Count{{"unsigned", 1}}, ByAttest: []Count{}, Unsigned: 1, UnsignedShare: 1,
			Failures: 1, ByError: []Count{}},
		Hourly: []Hour{
			{Start: t0, ByResult: map[string]int{"pass": 2, "fail": 1}, Total: 3,
				Inbound: map[string]int{"pass": 2, "fail": 1}, Outbound: map[string]int{},
				InboundErrors: map[string]int{"x5u_fetch_failed": 1}},
			{Start: t0.Add(time.Hour), ByResult: map[string]int{"fail": 2, "none": 1, "unsigned": 1}, Total: 4,
				Inbound: map[string]int{"fail": 2, "none": 1}, Outbound: map[string]int{"unsigned": 1},
				InboundErrors: map[string]int{"x5u_fetch_failed": 1, "stale_iat": 1}},
		},
		Gaps: 1,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("report\n got %+v\nwant %+v", r, want)
	}
	empty, err := st.Report(context.Background(), Filter{Since: t0.Add(100 * 24 * time.Hour)})
	if err != nil || empty.Total != 0 || empty.UnsignedShare != 0 {
		t.Errorf("empty report = %+v, %v", empty, err)
	}
}

func testRetention(t *testing.T, st Store, opts Options) {
	seed(t, st)
	n, err := st.Prune(context.Background(), t0.Add(60*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // p1 p2 f1 gap-1
		t.Errorf("pruned %d, want 4", n)
	}
	// Retention at Open: Now is t0+48h; keeping 48h-75m cuts at t0+75m.
	st.Close()
	opts.Retention = 48*time.Hour - 75*time.Minute
	st2, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if got := ids(all(t, st2)); !reflect.DeepEqual(got, []string{"s1", "n1", "f3"}) {
		t.Errorf("after retention: %v", got)
	}
}

func testMigrations(t *testing.T, st Store, opts Options) {
	ss := st.(*sqlStore)
	v, err := ss.Version(context.Background())
	if err != nil || v != SchemaVersion {
		t.Fatalf("version %d, %v; want %d", v, err, SchemaVersion)
	}
	seed(t, st)
	st.Close()
	again, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer again.Close()
	if n := len(all(t, again)); n != 7 {
		t.Errorf("rows after reopen %d, want 7", n)
	}
}

func testBatchAtomic(t *testing.T, st Store, _ Options) {
	err := st.RecordBatch(context.Background(), []Outcome{verify("ok", t0, nil), {System: "pbx1"}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	if n := len(all(t, st)); n != 0 {
		t.Errorf("%d rows written by a refused batch", n)
	}
}

// TestPostgresNodesStartTogether: several stirgate nodes opening one fresh
// database at once apply each migration exactly once.
func TestPostgresNodesStartTogether(t *testing.T) {
	dsn := newPostgresDB(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			st, err := Open(context.Background(), Options{DSN: dsn})
			if err == nil {
				err = st.Record(context.Background(), verify("same", t0, func(o *Outcome) { o.Result = "pass" }))
				st.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := Open(context.Background(), Options{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int
	want := 0
	for _, m := range migrations {
		if m != "" {
			want++
		}
	}
	if err := st.(*sqlStore).db.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != want {
		t.Errorf("%d migrations recorded, want %d (%v)", n, want, err)
	}
	if got := all(t, st); len(got) != 1 {
		t.Errorf("%d rows, want 1", len(got))
	}
}

// TestSQLiteFileMode: the database holds call records, so neither it nor
// its WAL is readable by others, whatever the umask.
func TestSQLiteFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outcomes.db")
	st, err := Open(context.Background(), Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Record(context.Background(), Outcome{Time: t0, System: "n1", UniqueID: "u1", Kind: KindVerify, Result: "pass"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s mode %o, want 600", filepath.Base(p), m)
		}
	}
}

func testGroups(t *testing.T, st Store, _ Options) {
	seed(t, st)
	ctx := context.Background()
	// The seed's failures name x5u hosts; the host folds two URLs.
	hosts, err := st.Groups(ctx, Filter{Kind: KindVerify}, ByX5UHost)
	if err != nil {
		t.Fatal(err)
	}
	want := []Group{
		{Key: "certs.bad.example", Total: 2, Fail: 2, A: 1, C: 1, TopError: "x5u_fetch_failed", TopN: 2},
		{Key: "other.example", Total: 1, Fail: 1, TopError: "stale_iat", TopN: 1},
	}
	if !reflect.DeepEqual(hosts, want) {
		t.Errorf("by host\n got %+v\nwant %+v", hosts, want)
	}
	sys, err := st.Groups(ctx, Filter{}, BySystem)
	if err != nil {
		t.Fatal(err)
	}
	if len(sys) != 1 || sys[0].Key != "pbx1" || sys[0].Total != 7 || sys[0].Pass != 2 || sys[0].Fail != 3 || sys[0].None != 1 ||
		sys[0].Unsigned != 1 || sys[0].TopError != "x5u_fetch_failed" {
		t.Errorf("by system %+v", sys)
	}
	// Drill-down filters: a host matches with a path or a port after it,
	// never as the tail of a longer host; LIKE's wildcards are literal.
	for host, n := range map[string]int{"certs.bad.example": 2, "bad.example": 0, "other.example": 1, "%": 0, "other_example": 0} {
		got, err := st.Query(ctx, Filter{X5UHost: host})
		if err != nil || len(got) != n {
			t.Errorf("x5u host %q: %d rows (%v), want %d", host, len(got), err, n)
		}
	}
	if got, _ := st.Query(ctx, Filter{Orig: "12155550009"}); len(got) != 2 {
		t.Errorf("orig filter: %d rows", len(got))
	}
	if _, err := st.Groups(ctx, Filter{}, GroupBy("reason; DROP TABLE outcomes")); err == nil {
		t.Error("unknown dimension accepted")
	}
}
