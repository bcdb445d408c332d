package sipmsg

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func readInvite(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/invite.sip")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseInvite(t *testing.T) {
	raw := readInvite(t)
	m, err := Parse(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Method != "INVITE" || m.RequestURI != "sip:+12155550131@sip.example.net;user=phone" || m.Version != "SIP/2.0" {
		t.Errorf("request line = %q %q %q", m.Method, m.RequestURI, m.Version)
	}
	if len(m.Headers) != 12 {
		t.Errorf("%d headers, want 12", len(m.Headers))
	}
	ids := m.Values("identity")
	if len(ids) != 1 || !strings.HasSuffix(ids[0], ";info=<http://shaken.signalwire.cloud/sp.pem>;alg=ES256;ppt=shaken") ||
		!strings.HasPrefix(ids[0], "eyJhbGciOiJFUzI1NiIs") {
		t.Errorf("Identity = %q", ids)
	}
	if got := m.Get("from"); got != `"Alice" <sip:+12155550121@sip.example.com;user=phone>;tag=1928301774` {
		t.Errorf("From = %q", got)
	}
	if m.ToTag() != "" {
		t.Errorf("ToTag = %q on an initial INVITE", m.ToTag())
	}
	if !strings.HasPrefix(string(m.Body), "v=0\r\n") || !strings.HasSuffix(string(m.Body), "PCMU/8000\r\n") || len(m.Body) != 134 {
		t.Errorf("Body = %q", m.Body)
	}
	// The body is a copy: the caller may reuse its buffer.
	raw[len(raw)-3] = 'X'
	if strings.Contains(string(m.Body), "X") {
		t.Errorf("Body aliases the input")
	}
}

func TestParse(t *testing.T) {
	const rl = "INVITE sip:+12155550131@example.net SIP/2.0\r\n"
	type hdr = Field
	cases := []struct {
		name    string
		raw     string
		lim     Limits
		headers []hdr
		body    string
		errLine int // -1 for success
	}{
		{"minimal", rl + "To: <sip:a@b>\r\n\r\n", Limits{}, []hdr{{"To", "<sip:a@b>"}}, "", -1},
		{"bare LF", strings.ReplaceAll(rl+"To: <sip:a@b>\r\nFrom: x\r\n\r\nbody\r\n", "\r\n", "\n"), Limits{}, []hdr{{"To", "<sip:a@b>"}, {"From", "x"}}, "body\n", -1},
		{"no blank line at end", rl + "To: x\r\nFrom: y", Limits{}, []hdr{{"To", "x"}, {"From", "y"}}, "", -1},
		{"request line only", rl, Limits{}, nil, "", -1},
		{"leading blank lines", "\r\n\r\n" + rl + "To: x\r\n\r\n", Limits{}, []hdr{{"To", "x"}}, "", -1},
		{"SWS around colon", rl + "To \t:  \tx \t\r\n\r\n", Limits{}, []hdr{{"To", "x"}}, "", -1},
		{"no space after colon", rl + "To:x\r\n\r\n", Limits{}, []hdr{{"To", "x"}}, "", -1},
		{"empty value", rl + "Subject:\r\n\r\n", Limits{}, []hdr{{"Subject", ""}}, "", -1},
		{"folded", rl + "Identity: a.b.c\r\n ;info=<https://x/y>\r\n\t ;ppt=shaken\r\nTo: x\r\n\r\n", Limits{},
			[]hdr{{"Identity", "a.b.c ;info=<https://x/y> ;ppt=shaken"}, {"To", "x"}}, "", -1},
		{"folded onto empty value", rl + "Subject:\r\n  hello\r\n\r\n", Limits{}, []hdr{{"Subject", "hello"}}, "", -1},
		{"blank continuation", rl + "Subject: a\r\n \t\r\n\r\n", Limits{}, []hdr{{"Subject", "a"}}, "", -1},
		{"content-length cuts body", rl + "Content-Length: 2\r\n\r\nabcdef", Limits{}, []hdr{{"Content-Length", "2"}}, "ab", -1},
		{"compact content-length", rl + "l: 0\r\n\r\nabcdef", Limits{}, []hdr{{"l", "0"}}, "", -1},
		{"content-length longer than body", rl + "Content-Length: 200\r\n\r\nabc", Limits{}, []hdr{{"Content-Length", "200"}}, "abc", -1},
		{"lower-case version", "INVITE sip:a@b sip/2.0\r\n\r\n", Limits{}, nil, "", -1},
		{"UTF-8 value", rl + "Subject: héllo\r\n\r\n", Limits{}, []hdr{{"Subject", "héllo"}}, "", -1},
		{"headers at limit", rl + "A: 1\r\nB: 2\r\n\r\n", Limits{MaxHeaders: 2}, []hdr{{"A", "1"}, {"B", "2"}}, "", -1},

		{"empty", "", Limits{}, nil, "", 0},
		{"blank lines only", "\r\n\n\r\n", Limits{}, nil, "", 0},
		{"too large", rl + "Subject: " + strings.Repeat("a", 100) + "\r\n", Limits{MaxBytes: 100}, nil, "", 0},
		{"NUL in header", rl + "To: a\x00b\r\n\r\n", Limits{}, nil, "", 2},
		{"NUL in body", rl + "\r\nab\x00", Limits{}, nil, "", 3},
		{"status line", "SIP/2.0 200 OK\r\n\r\n", Limits{}, nil, "", 1},
		{"two fields", "INVITE sip:a@b\r\n\r\n", Limits{}, nil, "", 1},
		{"four fields", "INVITE sip:a@b SIP/2.0 x\r\n\r\n", Limits{}, nil, "", 1},
		{"double space", "INVITE  sip:a@b SIP/2.0\r\n\r\n", Limits{}, nil, "", 1},
		{"bad version", "INVITE sip:a@b SIP/3.0\r\n\r\n", Limits{}, nil, "", 1},
		{"HTTP", "GET / HTTP/1.1\r\n\r\n", Limits{}, nil, "", 1},
		{"bad method", "INV(ITE sip:a@b SIP/2.0\r\n\r\n", Limits{}, nil, "", 1},
		{"URI without scheme", "INVITE a@b SIP/2.0\r\n\r\n", Limits{}, nil, "", 1},
		{"header without colon", rl + "To x\r\n\r\n", Limits{}, nil, "", 2},
		{"empty header name", rl + ": x\r\n\r\n", Limits{}, nil, "", 2},
		{"bad header name", rl + "T o: x\r\n\r\n", Limits{}, nil, "", 2},
		{"continuation first", rl + " To: x\r\n\r\n", Limits{}, nil, "", 2},
		{"stray CR", rl + "To: a\rFrom: b\r\n\r\n", Limits{}, nil, "", 2},
		{"control byte", rl + "To: a\x01\r\n\r\n", Limits{}, nil, "", 2},
		{"DEL", rl + "To: a\x7f\r\n\r\n", Limits{}, nil, "", 2},
		{"CR in request line", "INVITE sip:a@b\r SIP/2.0\r\n\r\n", Limits{}, nil, "", 1},
		{"line too long", rl + "To: " + strings.Repeat("a", 100) + "\r\n\r\n", Limits{MaxLine: 64}, nil, "", 2},
		{"request line too long", rl, Limits{MaxLine: 10}, nil, "", 1},
		{"folded header too long", rl + "To: " + strings.Repeat("a", 40) + "\r\n " + strings.Repeat("b", 40) + "\r\n\r\n", Limits{MaxLine: 64}, nil, "", 3},
		{"too many headers", rl + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", Limits{MaxHeaders: 2}, nil, "", 4},
		{"bad content-length", rl + "Content-Length: x\r\n\r\n", Limits{}, nil, "", 0},
		{"negative content-length", rl + "Content-Length: -1\r\n\r\n", Limits{}, nil, "", 0},
		{"signed content-length", rl + "Content-Length: +1\r\n\r\nab", Limits{}, nil, "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.raw), tc.lim)
			if tc.errLine >= 0 {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("error = %v, want *ParseError", err)
				}
				if pe.Line != tc.errLine {
					t.Fatalf("error line = %d (%v), want %d", pe.Line, err, tc.errLine)
				}
				if m != nil {
					t.Errorf("message returned with an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if len(m.Headers) != len(tc.headers) {
				t.Fatalf("headers = %q, want %q", m.Headers, tc.headers)
			}
			for i := range tc.headers {
				if m.Headers[i] != tc.headers[i] {
					t.Errorf("header %d = %q, want %q", i, m.Headers[i], tc.headers[i])
				}
			}
			if string(m.Body) != tc.body {
				t.Errorf("body = %q, want %q", m.Body, tc.body)
			}
		})
	}
}

func TestValues(t *testing.T) {
	raw := "INVITE sip:a@b SIP/2.0\r\n" +
		"Identity: one\r\n" +
		"y: two\r\n" +
		"IDENTITY: three\r\n" +
		"Y: four\r\n" +
		"f: <sip:1@h>;tag=a\r\n" +
		"i: call-1\r\n" +
		"Call-ID: call-2\r\n" +
		"X-Identity: not-this\r\n" +
		"yy: nor-this\r\n" +
		"\r\n"
	m, err := Parse([]byte(raw), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		want []string
	}{
		{"Identity", []string{"one", "two", "three", "four"}},
		{"identity", []string{"one", "two", "three", "four"}},
		{"y", []string{"one", "two", "three", "four"}},
		{"Y", []string{"one", "two", "three", "four"}},
		{"From", []string{"<sip:1@h>;tag=a"}},
		{"Call-ID", []string{"call-1", "call-2"}},
		{"i", []string{"call-1", "call-2"}},
		{"To", nil},
		{"t", nil},
		{"q", nil}, // not a compact form
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := m.Values(tc.name)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("Values(%q) = %q, want %q", tc.name, got, tc.want)
			}
			first := ""
			if len(tc.want) > 0 {
				first = tc.want[0]
			}
			if g := m.Get(tc.name); g != first {
				t.Errorf("Get(%q) = %q, want %q", tc.name, g, first)
			}
		})
	}
}

func TestCompactNames(t *testing.T) {
	want := map[byte]string{
		'i': "Call-ID", 'f': "From", 't': "To", 'm': "Contact", 'v': "Via", 'l': "Content-Length",
		'k': "Supported", 's': "Subject", 'c': "Content-Type", 'e': "Content-Encoding",
		'x': "Session-Expires", 'y': "Identity", 'o': "Event", 'r': "Refer-To", 'u': "Allow-Events",
		'd': "Request-Disposition", 'a': "Accept-Contact", 'b': "Referred-By", 'j': "Reject-Contact",
	}
	for c := byte('a'); c <= 'z'; c++ {
		full, ok := want[c]
		if !ok {
			full = string(c)
		}
		if got := fullName(string(c)); got != full {
			t.Errorf("fullName(%q) = %q, want %q", c, got, full)
		}
		if got := fullName(string(c - 32)); got != full && ok {
			t.Errorf("fullName(%q) = %q, want %q", c-32, got, full)
		}
	}
}

func TestToTag(t *testing.T) {
	cases := []struct{ to, want string }{
		{"<sip:bob@h>", ""},
		{"<sip:bob@h>;tag=abc", "abc"},
		{"<sip:bob@h> ; TAG = abc ; x=1", "abc"},
		{"\"Bob;tag=no\" <sip:bob@h;tag=no>;x=1;tag=yes", "yes"},
		{"\"Bob \\\" <x>\" <sip:bob@h;tag=no>", ""},
		{"sip:bob@h;tag=abc", "abc"},
		{"sip:bob@h;user=phone;tag=abc", "abc"},
		{"sip:bob@h", ""},
		{"<sip:bob@h;tag=uri-param>", ""},
		{"<sip:bob@h;tag=x", ""},
		{"\"unterminated;tag=x", ""},
		{"<sip:bob@h>;tagx=1", ""},
		{"<sip:bob@h>;tag", ""},
		{"", ""},
	}
	for _, tc := range cases {
		m := &Message{Headers: []Field{{"t", tc.to}}}
		if got := m.ToTag(); got != tc.want {
			t.Errorf("ToTag(%q) = %q, want %q", tc.to, got, tc.want)
		}
	}
	if got := (&Message{}).ToTag(); got != "" {
		t.Errorf("ToTag without To = %q", got)
	}
}

func TestParseErrorText(t *testing.T) {
	for _, tc := range []struct {
		e    *ParseError
		want string
	}{
		{&ParseError{Line: 3, Msg: "bad"}, "sipmsg: line 3: bad"},
		{&ParseError{Msg: "bad"}, "sipmsg: bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	raw := readInvite(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(raw, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
