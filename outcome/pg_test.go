package outcome

import (
	"os"
	"testing"

	"github.com/stirgate/stirgate/internal/pgtest"
)

// pg is a throwaway PostgreSQL cluster on a loopback port, started once
// for the package by TestMain. A machine without Debian's postgresql
// package fails the PostgreSQL tests; it never skips them.
var (
	pg    *pgtest.Server
	pgErr error
)

func TestMain(m *testing.M) {
	pg, pgErr = pgtest.Start(pgtest.Options{})
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// newPostgresDB creates an empty database for one test and returns its DSN.
func newPostgresDB(t *testing.T) string {
	t.Helper()
	if pgErr != nil {
		t.Fatalf("PostgreSQL test server did not start: %v", pgErr)
	}
	dsn, err := pg.NewDB(t.Context(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}
