package config

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// HTTP is the [http] section: the API listener of `stirgate serve` (the
// ATIS-1000082 signing and verification API, /outcomes, /dashboard,
// /metrics, /healthz, /readyz and the certificates too). It belongs on
// loopback or behind [[http.token]]; [publish] is the public listener.
// Zero fields take the defaults of WithDefaults.
type HTTP struct {
	// Listen is host:port. Empty: the [lab] listen address (with the lab's
	// TLS certificate) when [lab] is set and [publish] is not, else off.
	// Anything but loopback needs [[http.token]].
	Listen string `toml:"listen"`
	// Tokens are the API's clients; with none, the API must be on loopback
	// and every local process may use it.
	Tokens []APIToken `toml:"token"`
	// Allow limits the API to these sources (addresses, CIDR prefixes);
	// empty: any source that authenticates.
	Allow []string `toml:"allow"`
	// TLSCert and TLSKey enable TLS (PEM files). x5u fetchers require
	// https, so publish certificates over TLS or behind a TLS proxy.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// MaxBody caps request bodies (default 64 KiB); larger ones get 413.
	MaxBody int64 `toml:"max_body"`
	// CertMaxAge is the Cache-Control max-age of /certs/ (default 24h;
	// verifiers cache the chain that long).
	CertMaxAge Duration `toml:"cert_max_age"`
	// CertName is the file published at /certs/<name>.pem (default: the
	// base name of [signer] x5u, else "sp").
	CertName string `toml:"cert_name"`
	// Timeout bounds one signing or verification (default 2s).
	Timeout Duration `toml:"timeout"`
	// ShutdownGrace is how long SIGTERM waits for requests in flight.
	ShutdownGrace Duration `toml:"shutdown_grace"`
}

// HTTP defaults.
const (
	DefaultHTTPMaxBody       = 64 << 10
	DefaultHTTPCertMaxAge    = 24 * time.Hour
	DefaultHTTPTimeout       = 2 * time.Second
	DefaultHTTPShutdownGrace = 10 * time.Second
)

// WithDefaults returns a copy with every zero field set to its default.
func (h HTTP) WithDefaults() HTTP {
	if h.MaxBody == 0 {
		h.MaxBody = DefaultHTTPMaxBody
	}
	if h.CertMaxAge.Duration == 0 {
		h.CertMaxAge.Duration = DefaultHTTPCertMaxAge
	}
	if h.Timeout.Duration == 0 {
		h.Timeout.Duration = DefaultHTTPTimeout
	}
	if h.ShutdownGrace.Duration == 0 {
		h.ShutdownGrace.Duration = DefaultHTTPShutdownGrace
	}
	return h
}

// Validate reports every problem of the section at once.
func (h HTTP) Validate() error {
	var errs []error
	if h.Listen != "" {
		if _, _, err := net.SplitHostPort(h.Listen); err != nil {
			errs = append(errs, fmt.Errorf("http.listen %q: %w", h.Listen, err))
		}
	}
	if (h.TLSCert == "") != (h.TLSKey == "") {
		errs = append(errs, errors.New("http: tls_cert and tls_key go together"))
	}
	if h.MaxBody < 0 {
		errs = append(errs, errors.New("http.max_body: negative"))
	}
	if h.CertName != "" && !isCertName(h.CertName) {
		errs = append(errs, fmt.Errorf("http.cert_name %q: letters, digits, '-', '_' and '.' only", h.CertName))
	}
	if _, err := ParsePrefixes(h.Allow); err != nil {
		errs = append(errs, fmt.Errorf("http.allow: %w", err))
	}
	if d := h.Timeout.Duration; d > 30*time.Second {
		errs = append(errs, fmt.Errorf("http.timeout %s: above 30s", d))
	}
	return errors.Join(errs...)
}

func isCertName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
