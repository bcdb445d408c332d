package x5u

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

func TestCheckURL(t *testing.T) {
	allow := Policy{AllowHosts: []string{"cr.example.net", "*.sti.example", "192.0.2.10"}}
	lab := Policy{LabHosts: []string{"127.0.0.1:9443", "localhost:9444", "[::1]:9445"}}
	tests := []struct {
		name string
		url  string
		p    Policy
		ok   bool
	}{
		// Accepted.
		{"https", "https://cr.example.net/cert.pem", Policy{}, true},
		{"https 8443", "https://cr.example.net:8443/c/cert.pem", Policy{}, true},
		{"explicit 443", "https://cr.example.net:443/cert.pem", Policy{}, true},
		{"no path", "https://cr.example.net", Policy{}, true},
		{"public IPv4", "https://8.8.8.8/cert.pem", Policy{}, true},
		{"public IPv6", "https://[2001:4860:4860::8888]/cert.pem", Policy{}, true},
		{"case and trailing dot", "https://CR.Example.NET./cert.pem", allow, true},
		{"allow-list exact", "https://cr.example.net/cert.pem", allow, true},
		{"allow-list suffix", "https://a.b.sti.example/cert.pem", allow, true},
		{"allow-list IP", "https://192.0.2.10/cert.pem", allow, true},
		{"extra port", "https://cr.example.net:9443/cert.pem", Policy{Ports: []int{9443}}, true},
		{"http allowed", "http://cr.example.net/cert.pem", Policy{AllowHTTP: true}, true},
		{"http allowed port 80", "http://cr.example.net:80/cert.pem", Policy{AllowHTTP: true}, true},
		{"lab loopback", "https://127.0.0.1:9443/cert.pem", lab, true},
		{"lab localhost", "https://LOCALHOST:9444/cert.pem", lab, true},
		{"lab IPv6 loopback", "https://[::1]:9445/cert.pem", lab, true},
		{"lab host bypasses allow-list", "https://127.0.0.1:9443/c.pem", Policy{AllowHosts: []string{"x.example"}, LabHosts: lab.LabHosts}, true},

		// Refused: shape.
		{"empty", "", Policy{}, false},
		{"relative path", "/cert.pem", Policy{}, false},
		{"relative name", "cert.pem", Policy{}, false},
		{"scheme-relative", "//cr.example.net/cert.pem", Policy{}, false},
		{"unparsable", "https://cr.example.net:x/", Policy{}, false},
		{"control char", "https://cr.example.net/\x00", Policy{}, false},
		{"too long", "https://cr.example.net/" + strings.Repeat("a", maxURLLen), Policy{}, false},
		{"opaque", "https:cr.example.net/cert.pem", Policy{}, false},
		{"missing host", "https:///cert.pem", Policy{}, false},

		// Refused: scheme.
		{"http", "http://cr.example.net/cert.pem", Policy{}, false},
		{"file", "file:///etc/passwd", Policy{}, false},
		{"data", "data:text/plain,-----BEGIN%20CERTIFICATE-----", Policy{}, false},
		{"ftp", "ftp://cr.example.net/cert.pem", Policy{}, false},
		{"gopher", "gopher://cr.example.net:443/", Policy{}, false},
		{"http lab host without AllowHTTP", "http://127.0.0.1:9443/cert.pem", lab, false},

		// Refused: userinfo, query, fragment.
		{"userinfo", "https://user:pass@cr.example.net/cert.pem", Policy{}, false},
		{"user only", "https://user@cr.example.net/cert.pem", Policy{}, false},
		{"empty userinfo", "https://@cr.example.net/cert.pem", Policy{}, false},
		{"backslash confusion", `https://evil.example\@cr.example.net/`, Policy{}, false},
		{"query", "https://cr.example.net/cert.pem?x=1", Policy{}, false},
		{"empty query", "https://cr.example.net/cert.pem?", Policy{}, false},
		{"fragment", "https://cr.example.net/cert.pem#a", Policy{}, false},
		{"empty fragment", "https://cr.example.net/cert.pem#", Policy{}, false},
		{"lab query", "https://127.0.0.1:9443/cert.pem?x", lab, false},

		// Refused: port.
		{"port 80", "https://cr.example.net:80/cert.pem", Policy{}, false},
		{"port 8080", "https://cr.example.net:8080/cert.pem", Policy{}, false},
		{"port leading zero", "https://cr.example.net:0443/cert.pem", Policy{}, false},
		{"port out of range", "https://cr.example.net:99999/cert.pem", Policy{}, false},
		{"port 0", "https://cr.example.net:0/cert.pem", Policy{}, false},
		{"lab host other port", "https://127.0.0.1:9446/cert.pem", lab, false},
		{"http port 80 without AllowHTTP", "http://cr.example.net:80/", Policy{Ports: []int{80}}, false},

		// Refused: addresses.
		{"loopback", "https://127.0.0.1/cert.pem", Policy{}, false},
		{"loopback other", "https://127.9.9.9/cert.pem", Policy{}, false},
		{"short IPv4", "https://127.1/cert.pem", Policy{}, false},
		{"decimal IPv4", "https://2130706433/cert.pem", Policy{}, false},
		{"hex IPv4", "https://0x7f000001/cert.pem", Policy{}, false},
		{"octal IPv4", "https://0177.0.0.1/cert.pem", Policy{}, false},
		{"name ending in number", "https://cr.example.1/cert.pem", Policy{}, false},
		{"private 10", "https://10.1.2.3/cert.pem", Policy{}, false},
		{"private 172", "https://172.16.0.1/cert.pem", Policy{}, false},
		{"private 192", "https://192.168.1.1/cert.pem", Policy{}, false},
		{"CGNAT", "https://100.64.0.1/cert.pem", Policy{}, false},
		{"metadata", "https://169.254.169.254/latest/meta-data/", Policy{}, false},
		{"link-local v4", "https://169.254.1.1/cert.pem", Policy{}, false},
		{"unspecified v4", "https://0.0.0.0/cert.pem", Policy{}, false},
		{"this network", "https://0.1.2.3/cert.pem", Policy{}, false},
		{"multicast v4", "https://224.0.0.1/cert.pem", Policy{}, false},
		{"broadcast", "https://255.255.255.255/cert.pem", Policy{}, false},
		{"benchmarking", "https://198.18.0.1/cert.pem", Policy{}, false},
		{"IPv6 loopback", "https://[::1]/cert.pem", Policy{}, false},
		{"IPv6 unspecified", "https://[::]/cert.pem", Policy{}, false},
		{"IPv6 link-local", "https://[fe80::1]/cert.pem", Policy{}, false},
		{"IPv6 zoned", "https://[fe80::1%25eth0]/cert.pem", Policy{}, false},
		{"IPv6 ULA", "https://[fd12:3456::1]/cert.pem", Policy{}, false},
		{"IPv6 metadata", "https://[fd00:ec2::254]/latest/", Policy{}, false},
		{"IPv6 multicast", "https://[ff02::1]/cert.pem", Policy{}, false},
		{"IPv6 site-local", "https://[fec0::1]/cert.pem", Policy{}, false},
		{"IPv4-mapped loopback", "https://[::ffff:127.0.0.1]/cert.pem", Policy{}, false},
		{"IPv4-compatible", "https://[::127.0.0.1]/cert.pem", Policy{}, false},
		{"NAT64 of private", "https://[64:ff9b::a00:1]/cert.pem", Policy{}, false},
		{"6to4 of loopback", "https://[2002:7f00:1::1]/cert.pem", Policy{}, false},
		{"IPv4-translated loopback", "https://[::ffff:0:7f00:1]/", Policy{}, false},
		{"IPv4-translated metadata", "https://[::ffff:0:a9fe:a9fe]/cert.pem", Policy{}, false},
		{"IPv4-mapped hex loopback", "https://[::ffff:7f00:1]/cert.pem", Policy{}, false},
		{"NAT64 of loopback", "https://[64:ff9b::7f00:1]/cert.pem", Policy{}, false},
		{"NAT64 of metadata", "https://[64:ff9b::a9fe:a9fe]/cert.pem", Policy{}, false},
		{"Teredo", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/cert.pem", Policy{}, false},
		{"Teredo of loopback", "https://[2001:0:7f00:1::80ff:fffe]/cert.pem", Policy{}, false},
		{"localhost", "https://localhost/cert.pem", Policy{}, false},
		{"localhost subdomain", "https://x.localhost/cert.pem", Policy{}, false},
		{"lab host does not admit others", "https://127.0.0.2:9443/cert.pem", lab, false},

		// Refused: host syntax and allow-list.
		{"space in host", "https://cr example.net/cert.pem", Policy{}, false},
		{"empty label", "https://cr..example.net/cert.pem", Policy{}, false},
		{"leading hyphen", "https://-cr.example.net/cert.pem", Policy{}, false},
		{"non-ASCII host", "https://cr.exämple.net/cert.pem", Policy{}, false},
		{"not in allow-list", "https://other.example/cert.pem", allow, false},
		{"suffix does not match apex", "https://sti.example/cert.pem", allow, false},
		{"suffix is not substring", "https://evilsti.example/cert.pem", allow, false},
		{"exact is not suffix", "https://a.cr.example.net/cert.pem", allow, false},
		{"allow-list other IP", "https://192.0.2.11/cert.pem", allow, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := CheckURL(tt.url, tt.p)
			if tt.ok {
				if err != nil || u == nil {
					t.Fatalf("CheckURL(%q) = %v, %v; want accepted", tt.url, u, err)
				}
				return
			}
			if !errors.Is(err, stir.ErrX5UForbidden) {
				t.Fatalf("CheckURL(%q) = %v, %v; want %s", tt.url, u, err, stir.ErrX5UForbidden.Name)
			}
			if u != nil {
				t.Fatalf("CheckURL(%q) returned a URL with its error", tt.url)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		ok   bool
	}{
		{"zero", Policy{}, true},
		{"good", Policy{Ports: []int{9443}, AllowHosts: []string{"a.example", "*.b.example", "192.0.2.1"}, LabHosts: []string{"127.0.0.1:1", "[::1]:2", "lab.test:3"}}, true},
		{"port 0", Policy{Ports: []int{0}}, false},
		{"port too big", Policy{Ports: []int{65536}}, false},
		{"bare star", Policy{AllowHosts: []string{"*"}}, false},
		{"inner star", Policy{AllowHosts: []string{"a.*.example"}}, false},
		{"empty host", Policy{AllowHosts: []string{""}}, false},
		{"lab host without port", Policy{LabHosts: []string{"127.0.0.1"}}, false},
		{"lab host bad port", Policy{LabHosts: []string{"127.0.0.1:x"}}, false},
		{"lab host empty host", Policy{LabHosts: []string{":443"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestForbiddenAddr(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"2606:4700::1111", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},  // 6to4 of 8.8.8.8
		{"127.0.0.1", false},
		{"10.0.0.1", false},
		{"172.31.255.255", false},
		{"192.168.0.1", false},
		{"100.127.255.255", false},
		{"169.254.169.254", false},
		{"100.100.100.200", false},
		{"192.0.0.192", false},
		{"0.0.0.0", false},
		{"224.0.0.251", false},
		{"240.0.0.1", false},
		{"::1", false},
		{"::", false},
		{"fe80::1", false},
		{"fd00:ec2::254", false},
		{"fc00::1", false},
		{"ff05::2", false},
		{"::ffff:10.0.0.1", false},
		{"64:ff9b::7f00:1", false},
		{"64:ff9b:1::1", false},
		{"100::1", false},
		{"::ffff:0:7f00:1", false},                      // IPv4-translated loopback
		{"::ffff:0:a00:1", false},                       // IPv4-translated private
		{"::ffff:7f00:1", false},                        // IPv4-mapped loopback, hex
		{"64:ff9b::a9fe:a9fe", false},                   // NAT64 of the metadata address
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false}, // Teredo
		{"2001::1", false},
		{"2001:db8::1", false},
		{"::ffff:0:808:808", true}, // IPv4-translated 8.8.8.8
		{"2001:4860:4860::8888", true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			why := forbiddenAddr(netip.MustParseAddr(tt.addr))
			if (why == "") != tt.public {
				t.Fatalf("forbiddenAddr(%s) = %q, want public=%v", tt.addr, why, tt.public)
			}
		})
	}
	if forbiddenAddr(netip.Addr{}) == "" {
		t.Fatal("zero Addr admitted")
	}
}
