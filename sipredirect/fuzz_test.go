package sipredirect

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzParseRequest feeds arbitrary bytes through the parser and, when they
// parse, through the whole answer path: nothing may panic, and every
// answer, including the 400 for an answerable parse error, must encode to
// a response that reads back as that answer to that request.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(invite("f1", "Identity:")))
	f.Add([]byte(invite("f2")))
	f.Add([]byte("OPTIONS sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;rport\r\n\r\n"))
	f.Add([]byte("INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: x\r\n\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\n\r\n"))
	l := newTestLab(f, func() time.Time { return fixedNow })
	h, err := NewHandler(Options{Signer: l.signer, Verifier: l.verifier, Allow: allowTest(), Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	src := netip.MustParseAddrPort("192.0.2.10:5060")
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, dgram := range []bool{true, false} {
			r, err := ParseRequest(data, Limits{}, dgram)
			if err != nil {
				if pe, ok := err.(*ParseError); ok && pe.Answerable {
					a := &Answer{Code: 400, Reason: pe.Reason}
					checkEncoded(t, pe.Partial, a, encode(pe.Partial, a, src))
				}
				continue
			}
			if a := h.Handle(context.Background(), Auto, r, src); a != nil {
				checkEncoded(t, r, a, encode(r, a, src))
			}
		}
	})
}

// checkEncoded reads b back with the tests' own response reader and checks
// it against what went in: the status line is the answer's, the dialog
// fields are the request's (From replaced when the answer says so), every
// extra field of the answer is there in order, and nothing else is: a value
// carrying a line break would add a line and fail the count.
func checkEncoded(t *testing.T, r *Request, a *Answer, b []byte) {
	t.Helper()
	s := string(b)
	head, body, ok := strings.Cut(s, "\r\n\r\n")
	if !ok || body != "" {
		t.Fatalf("response is not one header block without a body: %q", s)
	}
	if strings.ContainsAny(strings.ReplaceAll(head, "\r\n", ""), "\r\n") {
		t.Fatalf("a bare CR or LF inside a line: %q", s)
	}
	resp := parseResponse(t, b)
	if resp.code != a.Code || resp.reason != a.Reason {
		t.Fatalf("status %d %q, want %d %q", resp.code, resp.reason, a.Code, a.Reason)
	}
	want := 2 // Server, Content-Length
	var vias []string
	for _, f := range r.Fields {
		if f.Name == "via" {
			vias = append(vias, f.Value)
		}
	}
	want += len(vias)
	if got := resp.fields["via"]; len(got) != len(vias) {
		t.Fatalf("%d Via fields, request had %d", len(got), len(vias))
	}
	for i := 1; i < len(vias); i++ { // only the top one is stamped
		if resp.fields["via"][i] != strings.TrimSpace(vias[i]) {
			t.Fatalf("Via %d %q, request %q", i, resp.fields["via"][i], vias[i])
		}
	}
	if len(vias) > 0 { // stamping adds parameters; protocol and sent-by stay
		sentBy, _, _ := strings.Cut(firstElement(vias[0]), ";")
		if !strings.HasPrefix(resp.fields["via"][0], strings.TrimSpace(sentBy)) {
			t.Fatalf("top Via %q does not start with the request's %q", resp.fields["via"][0], vias[0])
		}
	}
	from := r.Get("from")
	if a.From != "" {
		from = a.From
	}
	for _, c := range []struct{ name, want string }{
		{"from", from}, {"call-id", r.CallID}, {"cseq", r.Get("cseq")},
	} {
		if c.want == "" {
			if _, ok := resp.fields[c.name]; ok {
				t.Fatalf("%s present in the response, absent from the request", c.name)
			}
			continue
		}
		want++
		if got := resp.fields[c.name]; len(got) != 1 || got[0] != strings.TrimSpace(c.want) {
			t.Fatalf("%s %q, want %q", c.name, got, c.want)
		}
	}
	if to := r.Get("to"); to != "" {
		want++
		if got := resp.get("to"); !strings.HasPrefix(got, strings.TrimSpace(to)) {
			t.Fatalf("To %q, request %q", got, to)
		}
	}
	want += len(a.Fields)
	seen := map[string]int{}
	for _, f := range a.Fields {
		name := strings.ToLower(f.Name)
		got := resp.fields[name]
		if seen[name] >= len(got) || got[seen[name]] != strings.TrimSpace(f.Value) {
			t.Fatalf("answer field %s: %q missing from %q", f.Name, f.Value, got)
		}
		seen[name]++
	}
	if resp.get("content-length") != "0" || resp.get("server") != serverName {
		t.Fatalf("Content-Length %q, Server %q", resp.get("content-length"), resp.get("server"))
	}
	if n := strings.Count(head, "\r\n"); n != want {
		t.Fatalf("%d header lines, want %d:\n%s", n, want, s)
	}
}
