package sipmsg

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzSIPMessage checks that Parse never panics, fails only with
// *ParseError, keeps its limits, and that what it accepts, written back in
// plain form, reads back the same. Seeds are in testdata/fuzz/FuzzSIPMessage
// (an INVITE with Identity, folded headers, compact "y", several Identity
// headers) plus testdata/invite.sip.
func FuzzSIPMessage(f *testing.F) {
	f.Add(readInvite(f))
	lim := Limits{MaxBytes: 4096, MaxHeaders: 20, MaxLine: 512}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw, lim)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || m != nil {
				t.Fatalf("error %v (%T) with message %v", err, err, m != nil)
			}
			return
		}
		if len(m.Headers) > lim.MaxHeaders {
			t.Fatalf("%d headers over the limit", len(m.Headers))
		}
		for _, h := range m.Headers {
			if h.Name == "" || strings.ContainsAny(h.Name+h.Value, "\r\n\x00") || strings.Trim(h.Value, " \t") != h.Value {
				t.Fatalf("bad field %q", h)
			}
		}
		m.ToTag()
		m.Values("y")

		var b bytes.Buffer
		b.WriteString(m.Method + " " + m.RequestURI + " " + m.Version + "\r\n")
		for _, h := range m.Headers {
			b.WriteString(h.Name + ": " + h.Value + "\r\n")
		}
		b.WriteString("\r\n")
		b.Write(m.Body)
		m2, err := Parse(b.Bytes(), Limits{MaxBytes: 1 << 20, MaxLine: 1 << 20, MaxHeaders: 1000})
		if err != nil {
			t.Fatalf("re-parse of %q: %v", b.Bytes(), err)
		}
		if m2.Method != m.Method || m2.RequestURI != m.RequestURI || len(m2.Headers) != len(m.Headers) || !bytes.Equal(m2.Body, m.Body) {
			t.Fatalf("re-parse differs: %+v vs %+v", m2, m)
		}
		for i := range m.Headers {
			if m.Headers[i] != m2.Headers[i] {
				t.Fatalf("header %d: %q became %q", i, m.Headers[i], m2.Headers[i])
			}
		}
	})
}
