package outcome

import "testing"

// NewPostgresDB is newPostgresDB for the external test package (the scale
// benchmark, which also drives outcome/web).
func NewPostgresDB(tb testing.TB) string {
	tb.Helper()
	if pgErr != nil {
		tb.Fatalf("PostgreSQL test server did not start: %v", pgErr)
	}
	dsn, err := pg.NewDB(tb.Context(), tb.Name())
	if err != nil {
		tb.Fatal(err)
	}
	return dsn
}

// RawCount counts the calls (gaps left out) in raw rows, without the
// rollup: the benchmark's check that the seeded rollup adds up.
func RawCount(st Store) (int, error) {
	var n int
	err := st.(*sqlStore).db.QueryRow(`SELECT COUNT(*) FROM outcomes WHERE kind <> 'gap'`).Scan(&n)
	return n, err
}

// RollupRows counts the rollup's rows, for the benchmark's report.
func RollupRows(st Store) (int, error) {
	var n int
	err := st.(*sqlStore).db.QueryRow(`SELECT COUNT(*) FROM outcome_rollup`).Scan(&n)
	return n, err
}
