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
	// Groups breaks the matching outcomes down by one dimension (see
	// GroupBy), largest groups first, at most TopN.
	Groups(ctx context.Context, f Filter, by GroupBy) ([]Group, error)
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
	SPC          string
	Peer         string
	Tenant       string // the signing tenant
	Orig         string
	X5UHost      string // the host of the x5u URL
	Limit        int    // Query only: default 100, at most MaxLimit
	Offset       int    // Query only: rows skipped, for paging
	// After (Query only) continues newest-first after the row it names:
	// keyset paging, as fast on page 10,000 as on page 1 (Offset reads
	// and skips every row before).
	After *Cursor
}

// Cursor names a row in Query's order (newest first): its time and key.
type Cursor struct {
	Time                   time.Time
	System, UniqueID, Kind string
}

// CursorOf is the Cursor of o, for Filter.After.
func CursorOf(o Outcome) *Cursor {
	return &Cursor{Time: o.Time, System: o.System, UniqueID: o.UniqueID, Kind: o.Kind}
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
	// Inbound and Outbound split ByResult by direction: verifications
	// and signings ("error" is found in both).
	Inbound  map[string]int `json:"inbound"`
	Outbound map[string]int `json:"outbound"`
	// InboundErrors counts the hour's inbound failures (fail, error) by
	// error name: the failure reasons over time, whose shares are of
	// the hour's failures.
	InboundErrors map[string]int `json:"inbound_errors,omitempty"`
}

// Side is one direction of a Report: inbound (verification) or outbound
// (signing), never added together.
type Side struct {
	Total    int     `json:"total"`
	ByResult []Count `json:"by_result"`
	ByAttest []Count `json:"by_attest"`
	// Succeeded counts pass (inbound) or signed (outbound); SuccessShare
	// is its share of Total: the pass rate, the signed share.
	Succeeded    int     `json:"succeeded"`
	SuccessShare float64 `json:"success_share"`
	// Unsigned counts calls without a signature: none (inbound, no
	// Identity) or unsigned (outbound).
	Unsigned      int     `json:"unsigned"`
	UnsignedShare float64 `json:"unsigned_share"`
	// Failures counts fail and error (inbound) or unsigned and error
	// (outbound); ByError breaks them down, so its shares are of
	// Failures, not of Total.
	Failures int     `json:"failures"`
	ByError  []Count `json:"by_error"`
}

// Report is what `stirgate report` prints and the dashboard draws.
type Report struct {
	// Since and Until bound the period; a zero one (open) is left out.
	Since         time.Time `json:"since,omitzero"`
	Until         time.Time `json:"until,omitzero"`
	Inbound       Side      `json:"inbound"`
	Outbound      Side      `json:"outbound"`
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

// GroupBy names a dimension of Groups.
type GroupBy string

// Dimensions.
const (
	BySPC     GroupBy = "spc"    // the signer's service provider code
	ByX5UHost GroupBy = "x5u"    // the host serving the signer's certificate
	ByPeer    GroupBy = "peer"   // source trunk: address or otg
	BySystem  GroupBy = "system" // node
	ByOrig    GroupBy = "orig"   // calling number
	ByTenant  GroupBy = "tenant" // the signing tenant (FCC 24-120); every tenant, not only the top TopN
)

// Group is one row of a breakdown: volume, outcome mix, attestation mix
// and the most frequent failure.
type Group struct {
	Key      string `json:"key"`
	Total    int    `json:"total"`
	Pass     int    `json:"pass"`
	Fail     int    `json:"fail"` // fail and error
	None     int    `json:"none"`
	Signed   int    `json:"signed"`
	Unsigned int    `json:"unsigned"`
	A        int    `json:"attest_a"`
	B        int    `json:"attest_b"`
	C        int    `json:"attest_c"`
	TopError string `json:"top_error,omitempty"`
	TopN     int    `json:"top_error_n,omitempty"`
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
