package sipredirect

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// FuzzParseRequest feeds arbitrary bytes through the parser and, when they
// parse, through the whole answer path: nothing may panic, and every
// answerable error must encode.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(invite("f1", "Identity:")))
	f.Add([]byte("OPTIONS sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;rport\r\n\r\n"))
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
					_ = encode(pe.Partial, &Answer{Code: 400, Reason: pe.Reason}, src)
				}
				continue
			}
			if a := h.Handle(context.Background(), Auto, r, src); a != nil {
				_ = encode(r, a, src)
			}
		}
	})
}
