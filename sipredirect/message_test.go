package sipredirect

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	good := invite("p1", "Identity:", "y: abc")
	tests := []struct {
		name       string
		raw        string
		datagram   bool
		reason     string // "" = parses
		answerable bool
		check      func(t *testing.T, r *Request)
	}{
		{name: "good", raw: good, datagram: true, check: func(t *testing.T, r *Request) {
			if r.Method != "INVITE" || r.CallID != "p1" || r.CSeq != 1 || r.FromTag() != "a1" || r.ToTag() != "" || r.Branch() != "z9hG4bK-p1" {
				t.Errorf("fields: %+v", r)
			}
			if got := r.Values("identity"); len(got) != 2 || got[0] != "" || got[1] != "abc" {
				t.Errorf("identity values %q", got)
			}
		}},
		{name: "bare LF and folding", raw: strings.ReplaceAll(strings.Replace(good, "Call-ID: p1\r\n", "Call-ID:\r\n  p1\r\n", 1), "\r\n", "\n"), datagram: true,
			check: func(t *testing.T, r *Request) {
				if r.CallID != "p1" {
					t.Errorf("Call-ID %q", r.CallID)
				}
			}},
		{name: "compact forms", raw: "INVITE sip:1@x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\nf: <sip:2@x>;tag=1\r\nt: <sip:1@x>\r\ni: c1\r\nCSeq: 2 INVITE\r\nl: 0\r\n\r\n", datagram: true,
			check: func(t *testing.T, r *Request) {
				if r.CallID != "c1" || r.Get("from") == "" || r.CSeq != 2 {
					t.Errorf("compact: %+v", r)
				}
			}},
		{name: "leading keep-alive", raw: "\r\n\r\n" + good, datagram: true},
		{name: "body by Content-Length", raw: strings.Replace(good, "Content-Length: 0\r\n\r\n", "Content-Length: 4\r\n\r\nv=0\nEXTRA", 1), datagram: true,
			check: func(t *testing.T, r *Request) {
				if string(r.Body) != "v=0\n" {
					t.Errorf("body %q", r.Body)
				}
			}},
		{name: "response", raw: "SIP/2.0 200 OK\r\nVia: x\r\n\r\n", reason: "Unexpected Response"},
		{name: "empty", raw: "\r\n\r\n", reason: "Empty Message"},
		{name: "no blank line", raw: "INVITE sip:1@x SIP/2.0\r\nVia: a", reason: "Incomplete Header"},
		{name: "bad version", raw: strings.Replace(good, "SIP/2.0\r\n", "SIP/3.0\r\n", 1), reason: "Unsupported SIP Version", answerable: true},
		{name: "bad request line", raw: strings.Replace(good, "INVITE sip:+1", "INVITE", 1), reason: "Malformed Request Line", answerable: true},
		{name: "uri without scheme", raw: strings.Replace(good, "sip:+12155550131@redirect.example;user=phone SIP", "nowhere SIP", 1), reason: "Malformed Request-URI", answerable: true},
		// A bare CR in the URI would become a line break in the 302's
		// Contact (found by FuzzParseRequest); a NUL or DEL as bad.
		{name: "CR in uri", raw: strings.Replace(good, "sip:+12155550131@redirect.example;user=phone SIP", "sip:+12155550131@redirect.example;user=phone\rX-Injected:1 SIP", 1), reason: "Malformed Request-URI", answerable: true},
		{name: "NUL in uri", raw: strings.Replace(good, "@redirect.example;user=phone SIP", "@redirect\x00.example;user=phone SIP", 1), reason: "Malformed Request-URI", answerable: true},
		{name: "DEL in uri", raw: strings.Replace(good, "@redirect.example;user=phone SIP", "@redirect\x7f.example;user=phone SIP", 1), reason: "Malformed Request-URI", answerable: true},
		{name: "missing Via", raw: strings.Replace(good, "Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-p1\r\n", "", 1), reason: "Missing Via"},
		{name: "missing Call-ID", raw: strings.Replace(good, "Call-ID: p1\r\n", "", 1), reason: "Missing Call-ID", answerable: true},
		{name: "missing From", raw: strings.Replace(good, "From:", "X-From:", 1), reason: "Missing From", answerable: true},
		{name: "missing To", raw: strings.Replace(good, "To:", "X-To:", 1), reason: "Missing To", answerable: true},
		{name: "bad CSeq", raw: strings.Replace(good, "CSeq: 1 INVITE", "CSeq: one INVITE", 1), reason: "Malformed CSeq", answerable: true},
		{name: "CSeq method mismatch", raw: strings.Replace(good, "CSeq: 1 INVITE", "CSeq: 1 BYE", 1), reason: "CSeq Method Mismatch", answerable: true},
		{name: "duplicate Call-ID", raw: strings.Replace(good, "Call-ID: p1\r\n", "Call-ID: p1\r\nCall-ID: p2\r\n", 1), reason: "Duplicate Call-ID", answerable: true},
		{name: "header without colon", raw: strings.Replace(good, "Max-Forwards: 70", "Max-Forwards 70", 1), reason: "Malformed Header Line", answerable: true},
		{name: "bad header name", raw: strings.Replace(good, "Max-Forwards: 70", "Max Forwards: 70", 1), reason: "Malformed Header Name", answerable: true},
		{name: "content length too big", raw: strings.Replace(good, "Content-Length: 0", "Content-Length: 10", 1), datagram: true, reason: "Content-Length Exceeds Message", answerable: true},
		{name: "content length junk", raw: strings.Replace(good, "Content-Length: 0", "Content-Length: -1", 1), reason: "Malformed Content-Length", answerable: true},
		{name: "too large", raw: good + strings.Repeat("x", 70000), reason: "Message Too Large"},
		{name: "too many headers", raw: strings.Replace(good, "Max-Forwards: 70\r\n", strings.Repeat("X-A: 1\r\n", 200), 1), reason: "Too Many Headers", answerable: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRequest([]byte(tc.raw), Limits{}, tc.datagram)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if tc.check != nil {
					tc.check(t, r)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want ParseError %q", err, tc.reason)
			}
			if pe.Reason != tc.reason || pe.Answerable != tc.answerable {
				t.Fatalf("got %q answerable=%v, want %q answerable=%v", pe.Reason, pe.Answerable, tc.reason, tc.answerable)
			}
			if pe.Answerable {
				// A 400 must be encodable from what was read.
				b := encode(pe.Partial, &Answer{Code: 400, Reason: pe.Reason}, netip.MustParseAddrPort("192.0.2.10:5060"))
				if r := parseResponse(t, b); r.code != 400 || r.get("Via") == "" {
					t.Fatalf("400: %s", b)
				}
			}
		})
	}
}

func TestStampVia(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.99:40000")
	tests := []struct{ in, want string }{
		{"SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK1", "SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK1"},
		{"SIP/2.0/UDP pbx.example;branch=z9hG4bK1", "SIP/2.0/UDP pbx.example;branch=z9hG4bK1;received=192.0.2.99"},
		{"SIP/2.0/UDP 192.0.2.99:5060;rport;branch=z9hG4bK1", "SIP/2.0/UDP 192.0.2.99:5060;rport=40000;branch=z9hG4bK1;received=192.0.2.99"},
		{"SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.99, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2"},
		{"SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1", "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;received=192.0.2.99"},
	}
	for _, tc := range tests {
		if got := stampVia(tc.in, src); got != tc.want {
			t.Errorf("stampVia(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestTxKey(t *testing.T) {
	a, _ := ParseRequest([]byte(invite("k1")), Limits{}, true)
	ack := strings.Replace(strings.Replace(invite("k1"), "INVITE sip", "ACK sip", 1), "1 INVITE", "1 ACK", 1)
	b, _ := ParseRequest([]byte(ack), Limits{}, true)
	cancel := strings.Replace(strings.Replace(invite("k1"), "INVITE sip", "CANCEL sip", 1), "1 INVITE", "1 CANCEL", 1)
	c, _ := ParseRequest([]byte(cancel), Limits{}, true)
	if a.txKey() != b.txKey() {
		t.Error("ACK does not match its INVITE transaction")
	}
	if a.txKey() == c.txKey() {
		t.Error("CANCEL shares the INVITE transaction key")
	}
	old := strings.Replace(invite("k2"), "branch=z9hG4bK-k2", "branch=1234", 1)
	d, _ := ParseRequest([]byte(old), Limits{}, true)
	if !strings.Contains(d.txKey(), "k2") {
		t.Errorf("RFC 2543 key lacks Call-ID: %q", d.txKey())
	}
}

func TestUDPDestination(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.99:40000")
	tests := []struct{ via, want string }{
		{"SIP/2.0/UDP 192.0.2.99:5070;branch=z9hG4bK1", "192.0.2.99:5070"},
		{"SIP/2.0/UDP pbx.example;branch=z9hG4bK1", "192.0.2.99:5060"},
		{"SIP/2.0/UDP pbx.example:5080;branch=z9hG4bK1", "192.0.2.99:5080"},
		{"SIP/2.0/UDP 10.0.0.1:5070;rport;branch=z9hG4bK1", "192.0.2.99:40000"},
		{"SIP/2.0/UDP [2001:db8::1]:5090;branch=z9hG4bK1", "192.0.2.99:5090"},
		{"SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK1", "192.0.2.99:5060"},
	}
	for _, tc := range tests {
		r := &Request{viaTop: tc.via}
		if got := udpDestination(r, src).String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.via, got, tc.want)
		}
	}
	if got := udpDestination(nil, src); got != src {
		t.Errorf("no request: %s", got)
	}
}
