package x5u

import (
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// forbiddenRanges is the test's own table of address ranges an x5u URL may
// never point at, written from the IANA IPv4 and IPv6 Special-Purpose
// Address Registries (RFC 6890 and successors), not from policy.go, so
// that the fuzz targets below judge CheckURL by something it does not use.
// Addresses that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are
// judged by that address, in isForbidden.
var forbiddenRanges = []struct {
	prefix string
	why    string
}{
	{"0.0.0.0/8", "this network"},
	{"10.0.0.0/8", "private"},
	{"100.64.0.0/10", "carrier-grade NAT"},
	{"127.0.0.0/8", "loopback"},
	{"169.254.0.0/16", "link-local (cloud metadata)"},
	{"172.16.0.0/12", "private"},
	{"192.0.0.0/24", "IETF protocol assignments"},
	{"192.168.0.0/16", "private"},
	{"198.18.0.0/15", "benchmarking"},
	{"224.0.0.0/4", "multicast"},
	{"240.0.0.0/4", "reserved, limited broadcast"},

	{"::/96", "unspecified, loopback, IPv4-compatible"},
	{"::1/128", "loopback"},
	{"64:ff9b:1::/48", "local-use NAT64"},
	{"100::/64", "discard-only"},
	{"fc00::/7", "unique local"},
	{"fe80::/10", "link-local"},
	{"fec0::/10", "site-local (deprecated)"},
	{"ff00::/8", "multicast"},

	{"2001::/32", "Teredo (its client address is obfuscated)"},
	{"2001:db8::/32", "documentation"},

	// Not refused, since tests and examples use them as public addresses:
	// the IPv4 documentation ranges 192.0.2.0/24, 198.51.100.0/24,
	// 203.0.113.0/24, and 3fff::/20.
}

// embeddedV4 are the forms that carry an IPv4 address the network will
// reach; an address in one is forbidden when the carried one is.
var embeddedV4 = []struct {
	prefix string
	at     int // offset of the IPv4 address in the 16 bytes
}{
	{"::ffff:0:0/96", 12},   // IPv4-mapped
	{"::ffff:0:0:0/96", 12}, // IPv4-translated (RFC 2765)
	{"64:ff9b::/96", 12},    // NAT64 well-known prefix
	{"2002::/16", 2},        // 6to4
}

// isForbidden is the test's oracle for an address.
func isForbidden(a netip.Addr) bool {
	if a.Zone() != "" {
		return true // a zone only makes sense on a link-local address
	}
	if a.Is6() {
		b := a.As16()
		for _, e := range embeddedV4 {
			if netip.MustParsePrefix(e.prefix).Contains(a) {
				return isForbidden(netip.AddrFrom4([4]byte(b[e.at : e.at+4])))
			}
		}
	}
	for _, r := range forbiddenRanges {
		if netip.MustParsePrefix(r.prefix).Contains(a) {
			return true
		}
	}
	return false
}

// hostName is an LDH host name ('_' allowed) of 1-63-byte labels whose last
// label is not a number, written from RFC 1123 §2.1 and the WHATWG URL
// standard's "ends in a number" rule.
var hostName = regexp.MustCompile(`^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)
var numericLabel = regexp.MustCompile(`(^|\.)([0-9]+|0x[0-9a-f]*)$`)

// FuzzCheckURL: whatever CheckURL admits under the production policy is an
// https URL on 443 or 8443 with no userinfo, query or fragment, whose host,
// if an address, is not in forbiddenRanges, and otherwise a host name.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://cr.example.net/cert.pem",
		"https://127.0.0.1/cert.pem",
		"https://[::ffff:10.0.0.1]:8443/x",
		"https://[64:ff9b::a00:1]/x",
		"https://[2002:a00:1::]/x",
		"https://[fe80::1%25eth0]/x",
		"https://user@cr.example.net/",
		"https://cr.example.net/a?b#c",
		"http://cr.example.net/",
		"https://0x7f.1/",
		"https://8.8.8.8/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := CheckURL(raw, Policy{})
		if err != nil {
			if u != nil {
				t.Fatal("URL returned with an error")
			}
			return
		}
		if u.Scheme != "https" || u.User != nil || u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "#") || u.Opaque != "" {
			t.Fatalf("admitted %q: %#v", raw, u)
		}
		host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") {
			t.Fatalf("admitted host %q", host)
		}
		if p := u.Port(); p != "" && p != "443" && p != "8443" {
			t.Fatalf("admitted port %q", p)
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if isForbidden(a) {
				t.Fatalf("admitted forbidden address %s in %q", a, raw)
			}
		} else if len(host) > 253 || !hostName.MatchString(host) || numericLabel.MatchString(host) {
			t.Fatalf("admitted host name %q", host)
		}
	})
}

// FuzzAddressPolicy: for any address, an otherwise good URL naming it is
// refused exactly when the oracle forbids it. FuzzCheckURL shows nothing
// forbidden gets through; this shows nothing public is refused.
func FuzzAddressPolicy(f *testing.F) {
	for _, s := range []string{"8.8.8.8", "10.1.2.3", "100.64.0.1", "100.63.255.255", "169.254.169.254",
		"::ffff:8.8.8.8", "::ffff:127.0.0.1", "64:ff9b::808:808", "64:ff9b::a00:1", "2002:808:808::1",
		"2002:c0a8:101::1", "::ffff:0:7f00:1", "::ffff:0:808:808", "2001:0:4136:e378::1", "2606:4700::1111", "fd00:ec2::254", "fe80::1", "ff02::1", "::", "::2"} {
		f.Add(netip.MustParseAddr(s).AsSlice())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		lit := a.String()
		if a.Is6() {
			lit = "[" + lit + "]"
		}
		raw := "https://" + lit + "/cert.pem"
		_, err := CheckURL(raw, Policy{})
		if want := isForbidden(a); want != (err != nil) {
			t.Fatalf("%s: forbidden by the table %v, CheckURL error %v", raw, want, err)
		}
	})
}

// FuzzLifetime: any cache headers give a lifetime that is not negative;
// ok says whether the headers set one at all (RFC 9111 §4.2.1), by the
// test's own reading of them, and without one the lifetime is zero.
func FuzzLifetime(f *testing.F) {
	f.Add("max-age=60", "", "", "")
	f.Add("no-cache, max-age=60", "5", "", "")
	f.Add("", "", "Mon, 02 Jan 2030 15:04:05 GMT", "Mon, 02 Jan 2030 16:04:05 GMT")
	f.Add("s-maxage=99999999999999999999, max-age=1", "99999999999999999999", "0", "x")
	f.Add("private, max-age=x", "", "", "")
	f.Add(`max-age="7"`, "", "", "")
	f.Fuzz(func(t *testing.T, cc, age, date, expires string) {
		h := http.Header{}
		for k, v := range map[string]string{"Cache-Control": cc, "Age": age, "Date": date, "Expires": expires} {
			if v != "" {
				h.Set(k, v)
			}
		}
		ttl, ok := lifetime(h, time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC))
		if ttl < 0 {
			t.Fatalf("negative lifetime %v for %v", ttl, h)
		}
		// The test's reading: a no-store or no-cache directive, a valid
		// max-age or s-maxage, or any Expires header sets a lifetime.
		wantOK, noStore := expires != "", false
		for d := range strings.SplitSeq(cc, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				wantOK, noStore = true, true
			case "max-age", "s-maxage":
				if v := strings.Trim(strings.TrimSpace(arg), `"`); v != "" && strings.Trim(v, "0123456789") == "" {
					wantOK = true
				}
			}
		}
		if ok != wantOK {
			t.Fatalf("ok %v, want %v for %v", ok, wantOK, h)
		}
		if (!ok || noStore) && ttl != 0 {
			t.Fatalf("lifetime %v for %v, want 0", ttl, h)
		}
	})
}
