package x5u

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// Policy is the x5u URL policy of conformance row 9. The zero value is the
// production policy: https only, ports 443 and 8443, any public host.
type Policy struct {
	// AllowHTTP admits plain http (and its default port 80). Labs only: a
	// certificate fetched over http can be swapped by anyone on the path.
	AllowHTTP bool

	// Ports are admitted in addition to 443 and 8443.
	Ports []int

	// AllowHosts, when not empty, is the only set of hosts that may be
	// fetched: an exact host ("cr.example.net") or a suffix pattern
	// ("*.example.net", which matches sub-domains but not the apex).
	AllowHosts []string

	// LabHosts are "host:port" pairs admitted explicitly for labs and
	// tests. They bypass the port rule, the allow-list and the address
	// rules (so "127.0.0.1:8443" or "localhost:9443" work), but not the
	// scheme, userinfo, query or fragment rules.
	LabHosts []string
}

// maxURLLen bounds what CheckURL will parse; real x5u URLs are short, and
// the Identity header that carries them is itself capped.
const maxURLLen = 2048

// Validate reports malformed Policy entries, so that a typo in a lab host
// or allow-list fails at start rather than silently matching nothing.
func (p Policy) Validate() error {
	for _, port := range p.Ports {
		if port < 1 || port > 65535 {
			return fmt.Errorf("x5u policy: port %d out of range", port)
		}
	}
	for _, h := range p.AllowHosts {
		pat := strings.TrimPrefix(h, "*.")
		if pat == "" || strings.Contains(pat, "*") || !validHostname(normHost(pat)) && !isIPLiteral(pat) {
			return fmt.Errorf("x5u policy: allow-list entry %q: want \"host\" or \"*.suffix\"", h)
		}
	}
	for _, lh := range p.LabHosts {
		if _, _, ok := splitLabHost(lh); !ok {
			return fmt.Errorf("x5u policy: lab host %q: want \"host:port\"", lh)
		}
	}
	return nil
}

// CheckURL applies p to raw without touching the network and returns the
// parsed URL. Names are checked again, address by address, after DNS
// resolution at fetch time. Every refusal is a stir.ErrX5UForbidden whose
// detail names the rule.
func CheckURL(raw string, p Policy) (*url.URL, error) {
	u, _, err := checkURL(raw, p)
	return u, err
}

// checkURL is CheckURL that also reports whether the host was admitted as
// a lab host, which exempts its resolved addresses from the address rules.
func checkURL(raw string, p Policy) (*url.URL, bool, error) {
	forbid := stir.ErrX5UForbidden.Withf
	switch {
	case raw == "":
		return nil, false, forbid("empty URL")
	case len(raw) > maxURLLen:
		return nil, false, forbid("URL longer than %d bytes", maxURLLen)
	case strings.ContainsRune(raw, '#'):
		// Checked on the raw text: url.Parse drops an empty fragment.
		return nil, false, forbid("fragment not allowed")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, false, stir.ErrX5UForbidden.With("unparsable URL", err)
	}
	switch {
	case u.Scheme == "":
		return nil, false, forbid("not an absolute URL")
	case u.Scheme == "http" && !p.AllowHTTP:
		return nil, false, forbid("scheme http not allowed (https only)")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, false, forbid("scheme %q not allowed (https only)", u.Scheme)
	case u.Opaque != "":
		return nil, false, forbid("opaque URL not allowed")
	case u.User != nil:
		return nil, false, forbid("userinfo not allowed")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, false, forbid("query not allowed")
	}
	host := normHost(u.Hostname())
	if host == "" {
		return nil, false, forbid("missing host")
	}
	port, err := urlPort(u)
	if err != nil {
		return nil, false, err
	}
	ip, isIP := parseIP(host)
	if !isIP {
		if strings.ContainsRune(host, '%') {
			return nil, false, forbid("zone identifier not allowed")
		}
		if !validHostname(host) {
			return nil, false, forbid("invalid host name %q", host)
		}
		if numericTLD(host) {
			// "127.1", "0x7f.1", "2130706433": resolvers read these as
			// IPv4 addresses, so they are refused as ambiguous rather
			// than guessed at.
			return nil, false, forbid("host %q looks like a non-canonical IPv4 address", host)
		}
	}
	if isLabHost(p, host, ip, isIP, port) {
		return u, true, nil
	}
	if !portAllowed(p, u.Scheme, port) {
		return nil, false, forbid("port %d not allowed", port)
	}
	if len(p.AllowHosts) > 0 && !hostAllowed(p.AllowHosts, host, ip, isIP) {
		return nil, false, forbid("host %q not in allow-list", host)
	}
	if isIP {
		if why := forbiddenAddr(ip); why != "" {
			return nil, false, forbid("address %s is %s", ip, why)
		}
		return u, false, nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return nil, false, forbid("host %q is loopback", host)
	}
	return u, false, nil
}

// urlPort returns the effective port of u, refusing non-canonical forms
// ("0443") that different parsers read differently.
func urlPort(u *url.URL) (int, error) {
	ps := u.Port()
	if ps == "" {
		if u.Scheme == "http" {
			return 80, nil
		}
		return 443, nil
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != ps {
		return 0, stir.ErrX5UForbidden.Withf("invalid port %q", ps)
	}
	return n, nil
}

func portAllowed(p Policy, scheme string, port int) bool {
	if port == 443 || port == 8443 || (scheme == "http" && p.AllowHTTP && port == 80) {
		return true
	}
	for _, q := range p.Ports {
		if q == port {
			return true
		}
	}
	return false
}

func hostAllowed(list []string, host string, ip netip.Addr, isIP bool) bool {
	for _, pat := range list {
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			if !isIP && strings.HasSuffix(host, "."+normHost(suffix)) {
				return true
			}
			continue
		}
		if isIP {
			if a, ok := parseIP(pat); ok && a == ip {
				return true
			}
			continue
		}
		if normHost(pat) == host {
			return true
		}
	}
	return false
}

func isLabHost(p Policy, host string, ip netip.Addr, isIP bool, port int) bool {
	for _, lh := range p.LabHosts {
		h, lp, ok := splitLabHost(lh)
		if !ok || lp != port {
			continue
		}
		if isIP {
			if a, ok := parseIP(h); ok && a == ip {
				return true
			}
		} else if h == host {
			return true
		}
	}
	return false
}

func splitLabHost(s string) (host string, port int, ok bool) {
	h, ps, err := net.SplitHostPort(s)
	if err != nil || h == "" {
		return "", 0, false
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, false
	}
	return normHost(h), n, true
}

// normHost lower-cases a host and drops one trailing dot, so that
// "Example.COM." and "example.com" are the same host for every rule.
func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// parseIP accepts only canonical IP literals; IPv4-mapped IPv6 addresses
// are unmapped so that ::ffff:127.0.0.1 meets the IPv4 rules.
func parseIP(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func isIPLiteral(s string) bool { _, ok := parseIP(s); return ok }

// validHostname accepts LDH labels (plus '_', which some operators use),
// 1-63 bytes each, 253 bytes in all. Internationalised names must arrive
// in their ASCII (punycode) form.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// numericTLD reports whether the last label is a number (decimal or 0x
// hex), the WHATWG URL "ends in a number" test: no real TLD is numeric.
func numericTLD(h string) bool {
	last := h[strings.LastIndexByte(h, '.')+1:]
	if x, ok := strings.CutPrefix(last, "0x"); ok {
		last = x
		for i := 0; i < len(last); i++ {
			c := last[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return last != ""
}

// Address ranges that are never fetched from, beyond what netip classifies
// itself. Cloud metadata addresses get their own name in the detail because
// they are the usual target of an x5u SSRF.
var (
	metadataAddrs = []netip.Addr{
		netip.MustParseAddr("169.254.169.254"),
		netip.MustParseAddr("fd00:ec2::254"),
		netip.MustParseAddr("100.100.100.200"),
		netip.MustParseAddr("192.0.0.192"),
	}
	reservedPrefixes = []struct {
		p   netip.Prefix
		why string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this network)"},
		{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (shared address space)"},
		{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
		{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
		{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
		{netip.MustParsePrefix("100::/64"), "discard-only"},
		{netip.MustParsePrefix("fec0::/10"), "site-local"},
		// Teredo tunnels a client behind IPv4 NAT: the server and client
		// IPv4 addresses it embeds (the client's obfuscated) are reached
		// through a relay nobody here controls. A carrier's certificate
		// repository never lives on a Teredo address, so the whole /32
		// is refused rather than judged by what it embeds.
		{netip.MustParsePrefix("2001::/32"), "Teredo"},
		{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	}
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
	six4  = netip.MustParsePrefix("2002::/16")
	// siit is the IPv4-translated form ::ffff:0:a.b.c.d (RFC 2765). Unlike
	// the IPv4-mapped ::ffff:a.b.c.d, netip does not unmap it, and a
	// stateless translator on the path delivers it to a.b.c.d.
	siit = netip.MustParsePrefix("::ffff:0:0:0/96")
)

// forbiddenAddr returns why a may not be fetched from, or "" if it may.
func forbiddenAddr(a netip.Addr) string {
	a = a.Unmap()
	if a.Zone() != "" {
		return "zoned (link-local)"
	}
	for _, m := range metadataAddrs {
		if a == m {
			return "a cloud metadata address"
		}
	}
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	}
	for _, r := range reservedPrefixes {
		if r.p.Contains(a) {
			return r.why
		}
	}
	// Translation prefixes carry an IPv4 address that the network in
	// between will reach; judge that one. (IPv4-mapped ::ffff:0:0/96 was
	// unmapped above, so it meets the IPv4 rules directly.)
	if nat64.Contains(a) || siit.Contains(a) || six4.Contains(a) {
		b := a.As16()
		var v4 [4]byte
		if six4.Contains(a) {
			copy(v4[:], b[2:6])
		} else {
			copy(v4[:], b[12:])
		}
		if why := forbiddenAddr(netip.AddrFrom4(v4)); why != "" {
			return "a translation of an address that is " + why
		}
	}
	return ""
}
