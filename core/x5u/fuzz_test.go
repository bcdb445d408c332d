package x5u

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzCheckURL: whatever CheckURL admits under the production policy is an
// https URL on 443 or 8443 with no userinfo, query or fragment, whose host,
// if an address, is a public one.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://cr.example.net/cert.pem",
		"https://127.0.0.1/cert.pem",
		"https://[::ffff:10.0.0.1]:8443/x",
		"https://user@cr.example.net/",
		"https://cr.example.net/a?b#c",
		"http://cr.example.net/",
		"https://0x7f.1/",
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
		host := normHost(u.Hostname())
		if host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") {
			t.Fatalf("admitted host %q", host)
		}
		if p := u.Port(); p != "" && p != "443" && p != "8443" {
			t.Fatalf("admitted port %q", p)
		}
		if a, ok := parseIP(host); ok {
			if why := forbiddenAddr(a); why != "" {
				t.Fatalf("admitted %s address %s", why, a)
			}
		} else if !validHostname(host) || numericTLD(host) {
			t.Fatalf("admitted host name %q", host)
		}
	})
}

// FuzzLifetime: any cache headers give a lifetime that is not negative.
func FuzzLifetime(f *testing.F) {
	f.Add("max-age=60", "", "", "")
	f.Add("no-cache, max-age=60", "5", "", "")
	f.Add("", "", "Mon, 02 Jan 2030 15:04:05 GMT", "Mon, 02 Jan 2030 16:04:05 GMT")
	f.Add("s-maxage=99999999999999999999, max-age=1", "99999999999999999999", "0", "x")
	f.Fuzz(func(t *testing.T, cc, age, date, expires string) {
		h := http.Header{}
		for k, v := range map[string]string{"Cache-Control": cc, "Age": age, "Date": date, "Expires": expires} {
			if v != "" {
				h.Set(k, v)
			}
		}
		ttl, _ := lifetime(h, time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC))
		if ttl < 0 {
			t.Fatalf("negative lifetime %v for %v", ttl, h)
		}
	})
}
