package outcome

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Store is the outcome store: the write path of Recorder plus the reads the
// reports and the /outcomes endpoint need. Implementations are safe for
// concurrent use.
type Store interface {
	Recorder
	// RecordBatch writes outcomes in one transaction: all or none.
	RecordBatch(ctx context.Context, os []Outcome) error
	// Query returns matching outcomes, newest first.
	Query(ctx context.Context, f Filter) ([]Outcome, error)
	// Report aggregates the matching outcomes.
	Report(ctx context.Context, f Filter) (*Report, error)
	// Prune deletes outcomes older than before and returns how many.
	Prune(ctx context.Context, before time.Time) (int64, error)
	// Ping checks that the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// Options selects and configures a store. The zero value opens SQLite at
// DefaultPath.
type Options struct {
	// Driver is "sqlite" or "postgres"; empty means postgres when DSN is set,
	// else sqlite.
	Driver string
	// Path is the SQLite file; its directory is created if missing.
	Path string
	// DSN is a PostgreSQL connection string.
	DSN string
	// Retention, when positive, is applied by Open once and by Retain.
	Retention time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// DefaultPath is where SQLite lives when Options.Path is empty.
const DefaultPath = ".stirgate/outcomes.db"

// Filter selects outcomes. Zero fields match everything.
type Filter struct {
	Since, Until time.Time // Since ≤ Time < Until
	System       string
	Kind         string // "" matches verify and sign, never gap
	Result       string
	ErrorName    string
	Attest       string
	Limit        int // Query only: default 100, at most MaxLimit
}

// MaxLimit caps one Query.
const MaxLimit = 10000

// Count is one row of an aggregate.
type Count struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

// Hour is one bucket of the time series.
type Hour struct {
	Start    time.Time      `json:"start"`
	ByResult map[string]int `json:"by_result"`
	Total    int            `json:"total"`
}

// Report is what `stirgate report` prints and the dashboard draws.
type Report struct {
	Since         time.Time `json:"since"`
	Until         time.Time `json:"until"`
	Total         int       `json:"total"`
	ByResult      []Count   `json:"by_result"`
	ByAttest      []Count   `json:"by_attest"`
	ByNode        []Count   `json:"by_node"` // per System: the nodes of a cluster, or the Asterisk systems
	ByError       []Count   `json:"by_error"`
	TopX5UHosts   []Count   `json:"top_failing_x5u_hosts"`
	TopOrigins    []Count   `json:"top_failing_origins"`
	Unsigned      int       `json:"unsigned"`
	UnsignedShare float64   `json:"unsigned_share"`
	Hourly        []Hour    `json:"hourly"`
	Gaps          int       `json:"gaps"`
}

// TopN bounds the "top" lists of a Report.
const TopN = 10

// ErrUnavailable wraps every failure to reach the store, so the writer
// knows to spill instead of dropping.
var ErrUnavailable = errors.New("outcome store unavailable")

// Open connects to the store of opts, applies pending schema migrations,
// and prunes by retention once.
func Open(ctx context.Context, opts Options) (Store, error) {
	driver := opts.Driver
	if driver == "" {
		driver = "sqlite"
		if opts.DSN != "" {
			driver = "postgres"
		}
	}
	var (
		s   *sqlStore
		err error
	)
	switch driver {
	case "sqlite":
		s, err = openSQLite(ctx, opts)
	case "postgres":
		s, err = openPostgres(ctx, opts)
	default:
		return nil, fmt.Errorf("store: unknown driver %q", driver)
	}
	if err != nil {
		return nil, err
	}
	if opts.Retention > 0 {
		if _, err := Retain(ctx, s, opts.Retention, s.now); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Retain prunes outcomes older than keep, measured from now().
func Retain(ctx context.Context, s Store, keep time.Duration, now func() time.Time) (int64, error) {
	if now == nil {
		now = time.Now
	}
	return s.Prune(ctx, now().Add(-keep))
}

// ErrInvalid is returned for an outcome that lacks its identity.
var ErrInvalid = errors.New("outcome without system, uniqueid or kind")

func (o Outcome) valid() error {
	if o.UniqueID == "" || o.Kind == "" {
		return fmt.Errorf("%w: system=%q uniqueid=%q kind=%q", ErrInvalid, o.System, o.UniqueID, o.Kind)
	}
	return nil
}
