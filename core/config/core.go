package config

import (
	"errors"
	"fmt"
	"github.com/stirgate/stirgate/core/policy"
	"net"
	"net/url"
	"time"

	"github.com/stirgate/stirgate/core/stir"
)

// Lab is the [lab] section: a generated PKI for trying stirgate out.
// When Dir is set, missing signer and verifier files come from the lab
// (generated on first use) and the lab's x5u host is admitted.
type Lab struct {
	Dir    string `toml:"dir"`    // state directory, e.g. ".stirgate"
	SPC    string `toml:"spc"`    // service provider code (default "1234")
	Listen string `toml:"listen"` // where the certificate endpoint serves (default "127.0.0.1:8443")
}

// DefaultLabListen is where the lab certificate endpoint listens.
const DefaultLabListen = "127.0.0.1:8443"

// WithDefaults fills zero fields.
func (l Lab) WithDefaults() Lab {
	if l.SPC == "" {
		l.SPC = "1234"
	}
	if l.Listen == "" {
		l.Listen = DefaultLabListen
	}
	return l
}

// Validate checks the [lab] section.
func (l Lab) Validate() error {
	if l.Listen != "" {
		if _, _, err := net.SplitHostPort(l.Listen); err != nil {
			return fmt.Errorf("lab.listen %q: %w", l.Listen, err)
		}
	}
	return nil
}

// Signer is the [signer] section (STI-AS).
type Signer struct {
	Key           string     `toml:"key"`            // PEM private key (SEC1 or PKCS#8)
	Cert          string     `toml:"cert"`           // PEM chain: leaf first, then intermediates
	X5U           string     `toml:"x5u"`            // public URL of that chain
	DateWindow    Duration   `toml:"date_window"`    // Date header freshness for iat (default 60s)
	ExpiryWarning Duration   `toml:"expiry_warning"` // warn when the cert expires within (default 720h)
	ExpiryWarn    []Duration `toml:"expiry_warn"`    // lead times logged once each while running; the last one is /readyz "degraded" (default 720h, 168h, 24h)
	// The next credential (rotation): signed with from Activate on.
	Next
}

// Next is a credential's successor: next_key, next_cert, next_x5u and
// activate, in [signer] and in each [[tenant]].
type Next struct {
	NextKey  string    `toml:"next_key"`
	NextCert string    `toml:"next_cert"`
	NextX5U  string    `toml:"next_x5u"`
	Activate time.Time `toml:"activate"` // RFC 3339; signing switches at this instant
}

// Enabled reports whether a next credential is configured.
func (n Next) Enabled() bool {
	return n.NextKey != "" || n.NextCert != "" || n.NextX5U != "" || !n.Activate.IsZero()
}

func (n Next) validate(where, x5u string) error {
	if !n.Enabled() {
		return nil
	}
	var errs []error
	if n.NextKey == "" || n.NextCert == "" || n.NextX5U == "" || n.Activate.IsZero() {
		errs = append(errs, fmt.Errorf("%s: next_key, next_cert, next_x5u and activate go together", where))
	}
	if n.NextX5U != "" && n.NextX5U == x5u {
		errs = append(errs, fmt.Errorf("%s.next_x5u: the same URL as x5u; both chains are published during the overlap, each at its own URL", where))
	}
	if n.NextX5U != "" {
		if u, err := url.Parse(n.NextX5U); err != nil || !u.IsAbs() || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s.next_x5u %q: not an absolute URL", where, n.NextX5U))
		}
	}
	return errors.Join(errs...)
}

// Tenant is one [[tenant]]: the signing credential of a provider the
// operator signs for (FCC 24-120). [signer] is the tenant named "default".
type Tenant struct {
	Name   string `toml:"name"`
	Key    string `toml:"key"`
	Cert   string `toml:"cert"`
	X5U    string `toml:"x5u"`
	OrigID string `toml:"origid"`
	Next
}

// Enabled reports whether the section configures a signer.
func (s Signer) Enabled() bool { return s.Key != "" || s.Cert != "" || s.X5U != "" }

// Validate checks the [signer] section.
func (s Signer) Validate() error {
	var errs []error
	if s.Enabled() {
		if s.Key == "" || s.Cert == "" || s.X5U == "" {
			errs = append(errs, errors.New("signer: key, cert and x5u go together"))
		}
		if s.X5U != "" {
			if u, err := url.Parse(s.X5U); err != nil || !u.IsAbs() || u.Host == "" {
				errs = append(errs, fmt.Errorf("signer.x5u %q: not an absolute URL", s.X5U))
			}
		}
	}
	if s.Next.Enabled() && !s.Enabled() {
		errs = append(errs, errors.New("signer: a next credential needs a current one (key, cert, x5u)"))
	}
	errs = append(errs, s.Next.validate("signer", s.X5U))
	return errors.Join(errs...)
}

// Numbers is the [numbers] section: how national numbers become E.164.
type Numbers struct {
	// Plan selects built-in rules: "nanp" (default: 10 digits get a
	// leading 1) or "none".
	Plan     string       `toml:"plan"`
	National []NumberRule `toml:"national"` // extra rules, tried first
}

// NumberRule converts numbers of one length (and prefix) by prepending Add
// after removing Strip.
type NumberRule struct {
	Length int    `toml:"length"`
	Prefix string `toml:"prefix"`
	Strip  string `toml:"strip"`
	Add    string `toml:"add"`
}

// Validate checks the [numbers] section.
func (n Numbers) Validate() error {
	var errs []error
	switch n.Plan {
	case "", "nanp", "none":
	default:
		errs = append(errs, fmt.Errorf("numbers.plan %q: want nanp or none", n.Plan))
	}
	for i, r := range n.National {
		if r.Length <= 0 || r.Length > 15 {
			errs = append(errs, fmt.Errorf("numbers.national[%d].length %d: want 1..15", i, r.Length))
		}
		if !isDigits(r.Add, true) || !isDigits(r.Prefix, true) || !isDigits(r.Strip, true) {
			errs = append(errs, fmt.Errorf("numbers.national[%d]: prefix, strip and add are digits", i))
		}
	}
	return errors.Join(errs...)
}

func isDigits(s string, emptyOK bool) bool {
	if s == "" {
		return emptyOK
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Policy is the [policy] section: attestation decisions.
type Policy struct {
	Default   string     `toml:"default"`  // A, B, C, or "" to refuse unknown traffic
	Gateways  []string   `toml:"gateways"` // sources signed C
	Customers []Customer `toml:"customer"` // [[policy.customer]]
}

// Customer is one [[policy.customer]].
type Customer struct {
	Name    string   `toml:"name"`
	OrigID  string   `toml:"origid"`
	Numbers []string `toml:"numbers"`
	Sources []string `toml:"sources"`
	// RCD is [policy.customer.rcd]: rich call data (RFC 9795) signed
	// for the customer's calls: nam, icn, jcl, jcd (jCard JSON text), and
	// crn, the call reason when a request gives none.
	RCD *policy.RCD `toml:"rcd"`
	// RCDNumbers is [[policy.customer.rcd_number]]: rich call data for
	// some calling numbers (numbers = [...], then the rcd keys). The most
	// specific entry covering the calling number wins; others use RCD.
	RCDNumbers []policy.NumberRCD `toml:"rcd_number"`
	// AttestOverride lets the customer choose its calls' attestation (an
	// HTTP attest, AGI attest= or SIP Attestation field is used as given).
	// Off (default), a requested level may only lower what policy grants.
	AttestOverride bool `toml:"attest_override"`
	// Tenant is the [[tenant]] whose credential signs this customer's
	// calls; empty: the default tenant ([signer]).
	Tenant string `toml:"tenant"`
}

// Validate checks the [policy] section (the policy package re-checks
// numbers when it is built).
func (p Policy) Validate() error {
	var errs []error
	if p.Default != "" {
		if _, err := stir.ParseAttestation(p.Default); err != nil {
			errs = append(errs, fmt.Errorf("policy.default: %w", err))
		}
	}
	for _, c := range p.Customers {
		// RFC 8588 §4: origid is a UUID; a verifier in strict mode refuses
		// anything else, so a typo here would fail every call downstream.
		if c.OrigID != "" && !isUUID(c.OrigID) {
			errs = append(errs, fmt.Errorf("policy.customer %q: origid %q is not a UUID", c.Name, c.OrigID))
		}
	}
	return errors.Join(errs...)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// Verifier is the [verifier] section (STI-VS).
type Verifier struct {
	Trust           []string `toml:"trust"`            // PEM trust anchor files (required unless [lab])
	CRL             []string `toml:"crl"`              // CRL files (PEM or DER); empty = no revocation check
	MaxAge          Duration `toml:"max_age"`          // iat in the past (default 60s)
	MaxFuture       Duration `toml:"max_future"`       // iat in the future (default 60s)
	DateMaxAge      Duration `toml:"date_max_age"`     // Date header (default max_age)
	RequireDate     bool     `toml:"require_date"`     // a missing Date fails (default: judge on iat)
	RequireIdentity bool     `toml:"require_identity"` // no Identity → 428 instead of "none"
	Strict          bool     `toml:"strict"`           // canonical JSON and UUID origid required
	Mode            string   `toml:"mode"`             // disposition: "relaxed" (default) or "strict"
	ReasonProtocol  string   `toml:"reason_protocol"`  // Reason header protocol: "SIP" (default) or "STIR"
	VerstatSuffix   bool     `toml:"verstat_suffix"`   // append -A/-B/-C to verstat (vendor option)
	RCDDisplayName  bool     `toml:"rcd_display_name"` // show a verified rcd nam (RFC 9795) as the caller's display name
	MaxHeaders      int      `toml:"max_headers"`      // Identity headers considered (default 6: SHAKEN + 5 div)
	MaxHeaderBytes  int      `toml:"max_header_bytes"` // per header and in total (default 8192)
	MaxChain        int      `toml:"max_chain"`        // certificates per x5u (default 5)

	// The certificate lifecycle: trust anchors read again when their files
	// change, and the STI-PA CRL fetched from its URL (see package crl).
	TrustCheckInterval Duration `toml:"trust_check_interval"` // least time between looks at the trust files (default 1s)
	CRLURLs            []string `toml:"crl_urls"`             // fetched under the [x5u] URL policy and bounds
	CRLSigners         []string `toml:"crl_signers"`          // PEM files of the CRL signer certificates (required with crl_urls)
	CRLDir             string   `toml:"crl_dir"`              // last good copy of each CRL, so a restart needs no network
	CRLGrace           Duration `toml:"crl_grace"`            // last good copy used this long past nextUpdate (default 24h)
	CRLStale           string   `toml:"crl_stale"`            // past the grace: "reject" (437 crl_unusable, default) or "fail_open"
	CRLRefreshBefore   Duration `toml:"crl_refresh_before"`   // refresh this long before nextUpdate (default 1h)
	CRLRetry           Duration `toml:"crl_retry"`            // wait after a failed refresh (default 5m)
	CRLMaxBody         int64    `toml:"crl_max_body"`         // bytes (default 4 MiB)
	// CRLFromCerts also fetches the CRL distribution points that the
	// intermediates (STI-CAs) of verified chains name, under the same
	// policy, limits and checks; at most CRLMaxURLs of them (default 4).
	CRLFromCerts bool `toml:"crl_from_certs"`
	CRLMaxURLs   int  `toml:"crl_max_urls"`
}

// Validate checks the [verifier] section.
func (v Verifier) Validate() error {
	var errs []error
	switch v.Mode {
	case "", "relaxed", "strict":
	default:
		errs = append(errs, fmt.Errorf("verifier.mode %q: want relaxed or strict", v.Mode))
	}
	switch v.ReasonProtocol {
	case "", "SIP", "STIR":
	default:
		errs = append(errs, fmt.Errorf("verifier.reason_protocol %q: want SIP or STIR", v.ReasonProtocol))
	}
	if v.MaxHeaders < 0 || v.MaxHeaderBytes < 0 || v.MaxChain < 0 {
		errs = append(errs, errors.New("verifier: limits must not be negative"))
	}
	switch v.CRLStale {
	case "", "reject", "fail_open":
	default:
		errs = append(errs, fmt.Errorf("verifier.crl_stale %q: want reject or fail_open", v.CRLStale))
	}
	if len(v.CRLURLs) > 0 && len(v.CRLSigners) == 0 {
		errs = append(errs, errors.New("verifier.crl_urls: crl_signers is required to check the CRL's signature"))
	}
	if v.CRLFromCerts && len(v.CRLSigners) == 0 {
		errs = append(errs, errors.New("verifier.crl_from_certs: crl_signers is required to check the CRL's signature"))
	}
	if v.CRLMaxURLs < 0 {
		errs = append(errs, errors.New("verifier.crl_max_urls: negative"))
	}
	if v.CRLMaxBody < 0 {
		errs = append(errs, errors.New("verifier.crl_max_body must not be negative"))
	}
	if v.MaxAge.Duration > time.Hour || v.MaxFuture.Duration > time.Hour {
		errs = append(errs, errors.New("verifier: max_age and max_future above 1h defeat replay protection"))
	}
	return errors.Join(errs...)
}

// X5U is the [x5u] section: certificate fetching and caching.
type X5U struct {
	Timeout     Duration          `toml:"timeout"`      // whole fetch (default 2s)
	MaxBody     int64             `toml:"max_body"`     // bytes (default 65536)
	AllowHosts  []string          `toml:"allow_hosts"`  // "" = any public host; "cr.example.net", "*.example.net"
	Ports       []int             `toml:"ports"`        // besides 443 and 8443
	LabHosts    []string          `toml:"lab_hosts"`    // "host:port" admitted even on loopback (labs only)
	CAFile      string            `toml:"ca_file"`      // extra TLS roots for x5u hosts (labs only)
	AllowHTTP   bool              `toml:"allow_http"`   // plain http (labs only)
	MinTTL      Duration          `toml:"min_ttl"`      // default 1m
	MaxTTL      Duration          `toml:"max_ttl"`      // default 24h
	DefaultTTL  Duration          `toml:"default_ttl"`  // no cache headers (default 1h)
	NegativeTTL Duration          `toml:"negative_ttl"` // failures remembered (default 30s)
	MaxEntries  int               `toml:"max_entries"`  // default 10000
	CacheDir    string            `toml:"cache_dir"`    // on-disk cache shared by processes
	Offline     bool              `toml:"offline"`      // never fetch; preload or disk only
	Preload     map[string]string `toml:"preload"`      // URL = "file.pem"

	// Bounds against floods of distinct x5u URLs (any INVITE can name one).
	MaxFetches        int   `toml:"max_fetches"`          // in flight, all hosts (default 64)
	MaxFetchesPerHost int   `toml:"max_fetches_per_host"` // in flight, one host (default 8)
	DiskMaxEntries    int   `toml:"disk_max_entries"`     // files in cache_dir, all processes (default 5000)
	DiskMaxBytes      int64 `toml:"disk_max_bytes"`       // bytes in cache_dir, all processes (default 64 MiB)

	// SharedDSN, when set, keeps fetched chains and CRLs in PostgreSQL for
	// every node of a cluster (`stirgate serve` only): one fetch per URL
	// for the cluster while the entry is fresh, one per CRL refresh. It may
	// carry a password.
	SharedDSN        RedactedString `toml:"shared_dsn"`
	SharedMaxEntries int            `toml:"shared_max_entries"` // rows kept (default 5000)
}

// Validate checks the [x5u] section.
func (x X5U) Validate() error {
	var errs []error
	if x.MaxBody < 0 || x.MaxEntries < 0 || x.MaxFetches < 0 || x.MaxFetchesPerHost < 0 || x.DiskMaxEntries < 0 || x.DiskMaxBytes < 0 || x.SharedMaxEntries < 0 {
		errs = append(errs, errors.New("x5u: limits must not be negative"))
	}
	if x.Timeout.Duration > 30*time.Second {
		errs = append(errs, fmt.Errorf("x5u.timeout %s: above 30s would stall calls", x.Timeout.Duration))
	}
	for _, p := range x.Ports {
		if p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("x5u.ports: %d is not a port", p))
		}
	}
	for _, h := range x.LabHosts {
		if _, _, err := net.SplitHostPort(h); err != nil {
			errs = append(errs, fmt.Errorf("x5u.lab_hosts %q: want host:port", h))
		}
	}
	return errors.Join(errs...)
}
