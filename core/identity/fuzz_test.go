package identity

import (
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

// FuzzIdentity checks that Parse and Collect never panic, fail only with
// stir errors, and that whatever Parse accepts survives a Format round trip.
// The seed corpus in testdata/fuzz/FuzzIdentity holds the adversarial shapes
// of conformance §4; the published headers are added here.
func FuzzIdentity(f *testing.F) {
	f.Add(libstirshakenHeader(f))
	v := loadRFC8225(f)
	f.Add(Format(v.AppendixA.Token, "https://cert.example.org/passport.cer"))
	f.Add(Format(v.S71.Token, "https://cert.example.org/passport.cer"))
	f.Add(Format(v.S71.Compact, "https://cert.example.org/passport.cer"))

	f.Fuzz(func(t *testing.T, s string) {
		h, err := Parse(s)
		if err != nil {
			if stir.As(err) == nil {
				t.Fatalf("Parse error is not a *stir.Error: %v", err)
			}
		} else {
			if h.Protected+"."+h.Segments[2] != h.Token || !strings.Contains(s, h.Token) {
				t.Fatalf("token split inconsistent: %q", h.Token)
			}
			h2, err := Parse(Format(h.Token, h.Info))
			if err != nil {
				t.Fatalf("Format(%q, %q) does not re-parse: %v", h.Token, h.Info, err)
			}
			if h2.Token != h.Token || h2.Info != h.Info || h2.Alg != "ES256" || h2.Ppt != "shaken" {
				t.Fatalf("round trip: got %q %q, want %q %q", h2.Token, h2.Info, h.Token, h.Info)
			}
		}

		// Collect sees the input as one header and as lines (several headers).
		for _, vals := range [][]string{{s}, strings.Split(s, "\n")} {
			hdrs, errs, err := Collect(vals, Limits{})
			if err != nil {
				if stir.As(err) == nil || hdrs != nil || errs != nil {
					t.Fatalf("Collect: %v with %d headers, %d errors", err, len(hdrs), len(errs))
				}
				continue
			}
			for _, e := range errs {
				if stir.As(e) == nil {
					t.Fatalf("Collect per-header error is not a *stir.Error: %v", e)
				}
			}
			if len(hdrs)+len(errs) > DefaultMaxCount {
				t.Fatalf("Collect returned %d results, over the count limit", len(hdrs)+len(errs))
			}
		}
	})
}
