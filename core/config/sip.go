package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// SIP is the [sip] section: the SIP redirect server of `stirgate serve`
// (STI-AS and STI-VS for switches that sign by sending a special INVITE
// and reading the Identity out of a 302). It runs only when at least one
// [[sip.listen]] is configured. Zero fields take the defaults of
// WithDefaults.
type SIP struct {
	// Listen are the sockets: [[sip.listen]] address = "0.0.0.0:5060".
	Listen []SIPListen `toml:"listen"`
	// Allow lists the source addresses or CIDR prefixes served; others get
	// 403. Empty admits loopback only: a signing server open to the world
	// signs for anyone.
	Allow []string `toml:"allow"`
	// Contact is the redirect target; empty means the Request-URI. A URI
	// without a user part ("sip:gw.example.net:5080") gets the
	// Request-URI's user.
	Contact string `toml:"contact"`
	// Unsigned is the answer when a call must not be signed: 302 (redirect
	// without Identity, the default), 403 (refused: the Warning names
	// why, e.g. sign_not_allowed), 404 or 503 (route advance) or 603.
	Unsigned int `toml:"unsigned"`
	// Reason adds Reason: SIP;cause=302;text="..." to signing answers.
	Reason bool `toml:"reason"`
	// AttestationHeader is the request field that chooses the attestation
	// (default "Attestation"; "-" ignores any such field).
	AttestationHeader string `toml:"attestation_header"`
	// AttestationIndicator and OriginationID add P-Attestation-Indicator
	// and P-Origination-ID to signed and verified answers.
	AttestationIndicator bool `toml:"attestation_indicator"`
	OriginationID        bool `toml:"origination_id"`
	// Timeout bounds one signing or verification; keep it inside the 2 s
	// SBCs and Asterisk wait.
	Timeout Duration `toml:"timeout"`
	// MaxInflight bounds requests answered at once; beyond it INVITEs get
	// 503 at once so that the switch advances the route.
	MaxInflight int `toml:"max_inflight"`
	// IdleTimeout closes idle TCP connections.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxConns bounds open TCP connections (default 1024).
	MaxConns int `toml:"max_conns"`
	// TCPMaxPerSource bounds open TCP connections from one address
	// (default 64), so one host cannot hold every connection.
	TCPMaxPerSource int `toml:"tcp_max_per_source"`
	// TCPFirstMessageTimeout is how long a new TCP connection has to send
	// its first complete message (default 5s); idle_timeout applies after.
	TCPFirstMessageTimeout Duration `toml:"tcp_first_message_timeout"`
	// Profiles adapt answers per source: [[sip.profile]].
	Profiles []SIPProfile `toml:"profile"`
}

// SIPListen is one [[sip.listen]].
type SIPListen struct {
	Address   string `toml:"address"`   // host:port
	Transport string `toml:"transport"` // "udp", "tcp" or "both" (default)
	// Mode: "auto" (default: an INVITE with an Identity is verified, any
	// other is signed), "sign" or "verify".
	Mode string `toml:"mode"`
}

// SIPProfile is one [[sip.profile]]: answer field names for the switches at
// Sources. Sippy's 1CallConnect connector wants X-Identity and X-Date.
type SIPProfile struct {
	Name           string   `toml:"name"`
	Sources        []string `toml:"sources"`         // addresses or CIDR prefixes
	IdentityHeader string   `toml:"identity_header"` // default "Identity"
	DateHeader     string   `toml:"date_header"`     // default "Date"
}

// SIP defaults.
const (
	DefaultSIPUnsigned    = 302
	DefaultSIPTimeout     = 1500 * time.Millisecond
	DefaultSIPMaxInflight = 4096
	DefaultSIPIdleTimeout = 5 * time.Minute

	DefaultSIPTCPMaxPerSource        = 64
	DefaultSIPTCPFirstMessageTimeout = 5 * time.Second
)

// Enabled reports whether the SIP redirect server runs.
func (s SIP) Enabled() bool { return len(s.Listen) > 0 }

// WithDefaults returns a copy with every zero field set to its default.
func (s SIP) WithDefaults() SIP {
	if s.Unsigned == 0 {
		s.Unsigned = DefaultSIPUnsigned
	}
	if s.Timeout.Duration == 0 {
		s.Timeout.Duration = DefaultSIPTimeout
	}
	if s.MaxInflight == 0 {
		s.MaxInflight = DefaultSIPMaxInflight
	}
	if s.IdleTimeout.Duration == 0 {
		s.IdleTimeout.Duration = DefaultSIPIdleTimeout
	}
	if s.TCPMaxPerSource == 0 {
		s.TCPMaxPerSource = DefaultSIPTCPMaxPerSource
	}
	if s.TCPFirstMessageTimeout.Duration == 0 {
		s.TCPFirstMessageTimeout.Duration = DefaultSIPTCPFirstMessageTimeout
	}
	s.Listen = append([]SIPListen(nil), s.Listen...)
	for i := range s.Listen {
		if s.Listen[i].Transport == "" {
			s.Listen[i].Transport = "both"
		}
		if s.Listen[i].Mode == "" {
			s.Listen[i].Mode = "auto"
		}
	}
	return s
}

// ParsePrefixes reads addresses and CIDR prefixes ("192.0.2.10",
// "10.0.0.0/8") as prefixes.
func ParsePrefixes(items []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, it := range items {
		if p, err := netip.ParsePrefix(it); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(it)
		if err != nil {
			return nil, fmt.Errorf("%q: not an address or CIDR prefix", it)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Validate reports every problem of the section at once.
func (s SIP) Validate() error {
	var errs []error
	for i, l := range s.Listen {
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			errs = append(errs, fmt.Errorf("sip.listen[%d].address %q: %w", i, l.Address, err))
		}
		switch l.Transport {
		case "", "udp", "tcp", "both":
		default:
			errs = append(errs, fmt.Errorf("sip.listen[%d].transport %q: want udp, tcp or both", i, l.Transport))
		}
		switch l.Mode {
		case "", "auto", "sign", "verify":
		default:
			errs = append(errs, fmt.Errorf("sip.listen[%d].mode %q: want auto, sign or verify", i, l.Mode))
		}
	}
	if _, err := ParsePrefixes(s.Allow); err != nil {
		errs = append(errs, fmt.Errorf("sip.allow: %w", err))
	}
	if c := strings.ToLower(s.Contact); c != "" && !strings.HasPrefix(c, "sip:") && !strings.HasPrefix(c, "sips:") {
		errs = append(errs, fmt.Errorf("sip.contact %q: want a sip: or sips: URI", s.Contact))
	}
	switch s.Unsigned {
	case 0, 302, 403, 404, 503, 603:
	default:
		errs = append(errs, fmt.Errorf("sip.unsigned %d: want 302, 403, 404, 503 or 603", s.Unsigned))
	}
	if d := s.Timeout.Duration; d != 0 && (d < 50*time.Millisecond || d > 10*time.Second) {
		errs = append(errs, fmt.Errorf("sip.timeout %s: want 50ms..10s", d))
	}
	if s.MaxInflight < 0 || s.MaxConns < 0 {
		errs = append(errs, errors.New("sip: max_inflight and max_conns must not be negative"))
	}
	if s.TCPMaxPerSource < 0 {
		errs = append(errs, errors.New("sip.tcp_max_per_source: negative"))
	}
	if d := s.TCPFirstMessageTimeout.Duration; d != 0 && (d < 100*time.Millisecond || d > time.Minute) {
		errs = append(errs, fmt.Errorf("sip.tcp_first_message_timeout %s: want 100ms..1m", d))
	}
	for i, p := range s.Profiles {
		if _, err := ParsePrefixes(p.Sources); err != nil {
			errs = append(errs, fmt.Errorf("sip.profile[%d].sources: %w", i, err))
		}
		if len(p.Sources) == 0 {
			errs = append(errs, fmt.Errorf("sip.profile[%d]: no sources", i))
		}
	}
	return errors.Join(errs...)
}
