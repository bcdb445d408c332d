package config

import (
	"errors"
	"fmt"
	"log/slog"
)

// Store is the [store] section: where verification and signing outcomes
// are kept. Zero fields take the defaults of WithDefaults.
type Store struct {
	// Driver is "sqlite" (embedded, the default) or "postgres".
	Driver string `toml:"driver"`
	// Path is the SQLite database file.
	Path string `toml:"path"`
	// DSN is the PostgreSQL connection string (URL or key=value form). It
	// may carry a password, so it is redacted in logs.
	DSN RedactedString `toml:"dsn"`
	// RetentionDays deletes outcomes older than this many days; 0 keeps
	// everything.
	RetentionDays int `toml:"retention_days"`
	// SpillPath is the JSON-lines file that holds outcomes while the store
	// is unreachable; they are replayed when it returns.
	SpillPath string `toml:"spill_path"`
	// System names this node in the records `stirgate serve` and the
	// Kamailio libraries write (default: the host name).
	System string `toml:"system"`
	// SpoolDir, when set, is where libstirgate and the libsecsipid drop-in
	// append each process's outcomes; `stirgate serve` and `stirgate
	// collect` move them into the store.
	SpoolDir string `toml:"spool_dir"`
	// JournalDir holds each command's outcome journal (a subdirectory per
	// command): every outcome is copied there before the surface moves on,
	// so a process killed outright (SIGKILL, OOM) loses none; "off" turns
	// it off.
	JournalDir string `toml:"journal_dir"`
}

// JournalOff is the JournalDir that turns the journal off.
const JournalOff = "off"

// Store defaults.
const (
	DefaultStoreDriver     = "sqlite"
	DefaultStorePath       = ".stirgate/outcomes.db"
	DefaultStoreSpillPath  = ".stirgate/outcomes.spill.jsonl"
	DefaultStoreJournalDir = ".stirgate/journal"
)

// WithDefaults returns a copy with every zero field set to its default. A
// DSN alone selects PostgreSQL.
func (s Store) WithDefaults() Store {
	if s.Driver == "" {
		s.Driver = DefaultStoreDriver
		if s.DSN != "" {
			s.Driver = "postgres"
		}
	}
	if s.Driver == "sqlite" && s.Path == "" {
		s.Path = DefaultStorePath
	}
	if s.SpillPath == "" {
		s.SpillPath = DefaultStoreSpillPath
	}
	if s.JournalDir == "" {
		s.JournalDir = DefaultStoreJournalDir
	}
	return s
}

// Validate reports every problem of the section at once.
func (s Store) Validate() error {
	var errs []error
	switch s.Driver {
	case "", "sqlite":
		if s.DSN != "" && s.Driver == "sqlite" {
			errs = append(errs, errors.New("store.dsn is set but store.driver is \"sqlite\""))
		}
	case "postgres":
		if s.DSN == "" {
			errs = append(errs, errors.New("store.driver \"postgres\" needs store.dsn"))
		}
	default:
		errs = append(errs, fmt.Errorf("store.driver %q: want \"sqlite\" or \"postgres\"", s.Driver))
	}
	if s.RetentionDays < 0 {
		errs = append(errs, errors.New("store.retention_days: negative"))
	}
	return errors.Join(errs...)
}

// LogValue implements slog.LogValuer; the DSN redacts itself.
func (s Store) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("driver", s.Driver),
		slog.String("path", s.Path),
		slog.Any("dsn", s.DSN),
		slog.Int("retention_days", s.RetentionDays),
		slog.String("spill_path", s.SpillPath),
		slog.String("journal_dir", s.JournalDir),
	)
}
