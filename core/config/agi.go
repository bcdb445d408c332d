package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// AGI is the [agi] section: the FastAGI server that Asterisk dialplans call
// with AGI(agi://host:4573/sign) and AGI(agi://host:4573/verify). Zero
// fields take the defaults of WithDefaults. What the scripts judge by
// (require_identity, max_headers) is [verifier]'s, shared with every
// surface.
type AGI struct {
	// Listen is the host:port the FastAGI server binds. Asterisk's default
	// FastAGI port is 4573. Loopback by default: FastAGI has no
	// authentication, so exposing it is an explicit choice.
	Listen string `toml:"listen"`
	// SessionTimeout bounds one whole AGI session, from accept to close.
	// Asterisk never times a FastAGI server out, so without this a stuck
	// session would hold a call's dialplan forever.
	SessionTimeout Duration `toml:"session_timeout"`
	// MaxSessions caps concurrent sessions; a connection beyond it is closed
	// at once, so the dialplan continues (STIR_RESULT stays empty) instead
	// of queueing behind slow peers.
	MaxSessions int `toml:"max_sessions"`
	// MaxSessionsPerSource caps concurrent sessions from one address
	// (default half of MaxSessions), so that one host's silent connections
	// cannot take every session.
	MaxSessionsPerSource int `toml:"max_sessions_per_source"`
	// Allow lists the addresses and CIDR prefixes that may open sessions;
	// others are closed at accept. Empty admits loopback only, and then
	// Listen must be a loopback address: FastAGI has no authentication.
	Allow []string `toml:"allow"`
	// System names this Asterisk in the outcome store, as [ami] system
	// does; both surfaces must use the same name for their records of one
	// call to merge. Empty means [ami] system, else the host name.
	System string `toml:"system"`
	// ShutdownGrace is how long SIGTERM waits for running sessions.
	ShutdownGrace Duration `toml:"shutdown_grace"`
	// MetricsListen is the host:port of an HTTP listener serving /metrics
	// (Prometheus) and /healthz for this process. Empty turns it off: the
	// FastAGI server often runs beside `stirgate serve`, whose [http]
	// listener already has a /metrics, and a second default port would
	// collide with it.
	MetricsListen string `toml:"metrics_listen"`
}

// AGI defaults.
const (
	DefaultAGIListen         = "127.0.0.1:4573"
	DefaultAGISessionTimeout = 10 * time.Second
	DefaultAGIMaxSessions    = 1024
	DefaultAGIShutdownGrace  = 15 * time.Second
)

// WithDefaults returns a copy with every zero field set to its default.
func (a AGI) WithDefaults() AGI {
	if a.Listen == "" {
		a.Listen = DefaultAGIListen
	}
	if a.SessionTimeout.Duration == 0 {
		a.SessionTimeout.Duration = DefaultAGISessionTimeout
	}
	if a.MaxSessions == 0 {
		a.MaxSessions = DefaultAGIMaxSessions
	}
	if a.MaxSessionsPerSource == 0 {
		a.MaxSessionsPerSource = max(a.MaxSessions/2, 1)
	}
	if a.ShutdownGrace.Duration == 0 {
		a.ShutdownGrace.Duration = DefaultAGIShutdownGrace
	}
	return a
}

// Validate reports every problem of the section at once.
func (a AGI) Validate() error {
	var errs []error
	if a.Listen != "" {
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			errs = append(errs, fmt.Errorf("agi.listen %q: %w", a.Listen, err))
		} else if err := a.CheckExposure(); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := ParsePrefixes(a.Allow); err != nil {
		errs = append(errs, fmt.Errorf("agi.allow: %w", err))
	}
	if a.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(a.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("agi.metrics_listen %q: %w", a.MetricsListen, err))
		}
	}
	if d := a.SessionTimeout.Duration; d != 0 && d < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("agi.session_timeout %s: below 100ms", d))
	}
	if a.MaxSessions < 0 {
		errs = append(errs, errors.New("agi.max_sessions: negative"))
	}
	if a.MaxSessionsPerSource < 0 {
		errs = append(errs, errors.New("agi.max_sessions_per_source: negative"))
	}
	return errors.Join(errs...)
}

// CheckExposure refuses a listener that other hosts can reach with an
// empty allow-list: FastAGI has no authentication, so whoever connects can
// sign calls; the sources must be named. (With an empty list only loopback
// would be served anyway, so such a config is a mistake either way.)
func (a AGI) CheckExposure() error {
	if len(a.Allow) > 0 || a.Listen == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(a.Listen)
	if err != nil {
		return nil // reported by Validate
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	return fmt.Errorf("agi.listen %q is not a loopback address and agi.allow is empty: "+
		"set agi.allow to the Asterisk hosts (addresses or CIDR prefixes) that may use FastAGI", a.Listen)
}
