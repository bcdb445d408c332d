package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// AMI is the [ami] section: how `stirgate ami` reaches Asterisk's manager
// interface. Zero fields take the defaults of WithDefaults.
type AMI struct {
	// Address is Asterisk's AMI host:port (manager.conf [general] port).
	Address string `toml:"address"`
	// Username and Secret are a manager.conf user with read=call,user,system.
	Username string         `toml:"username"`
	Secret   RedactedString `toml:"secret"`
	// PingInterval is how often the listener sends Ping; a Pong must come
	// back within the same interval or the session is treated as dead
	// (this is what catches a half-open TCP connection).
	PingInterval Duration `toml:"ping_interval"`
	// System names this Asterisk in the outcome store: the first part of
	// every record's identity (system, uniqueid, kind). Several PBXes can
	// share one store only if their names differ.
	System string `toml:"system"`
	// QueueSize bounds the in-memory queue between the AMI reader and the
	// store writer; overflow goes to the store's spill file.
	QueueSize int `toml:"queue_size"`
}

// AMI defaults.
const (
	DefaultAMIAddress      = "127.0.0.1:5038"
	DefaultAMIPingInterval = 5 * time.Second
	DefaultAMIQueueSize    = 65536
)

// WithDefaults returns a copy with every zero field set to its default.
func (a AMI) WithDefaults() AMI {
	if a.Address == "" {
		a.Address = DefaultAMIAddress
	}
	if a.PingInterval.Duration == 0 {
		a.PingInterval.Duration = DefaultAMIPingInterval
	}
	if a.QueueSize == 0 {
		a.QueueSize = DefaultAMIQueueSize
	}
	return a
}

// Validate reports every problem of the section at once.
func (a AMI) Validate() error {
	var errs []error
	if a.Address != "" {
		if _, _, err := net.SplitHostPort(a.Address); err != nil {
			errs = append(errs, fmt.Errorf("ami.address %q: %w", a.Address, err))
		}
	}
	if a.PingInterval.Duration != 0 && a.PingInterval.Duration < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("ami.ping_interval %s: below 100ms", a.PingInterval.Duration))
	}
	if a.QueueSize < 0 {
		errs = append(errs, errors.New("ami.queue_size: negative"))
	}
	return errors.Join(errs...)
}

// RedactedString is a credential read from the config. It prints as
// "[redacted]" through fmt and slog so that logging a whole section never
// leaks it.
type RedactedString string

// LogValue implements slog.LogValuer.
func (RedactedString) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String implements fmt.Stringer.
func (RedactedString) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer, so %#v does not leak it either.
func (RedactedString) GoString() string { return `"[redacted]"` }

// Reveal returns the secret itself, for the one place that sends it.
func (s RedactedString) Reveal() string { return string(s) }
