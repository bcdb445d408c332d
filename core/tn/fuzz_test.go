package tn

import (
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

// FuzzTN checks that Canonical, FromHeader, AddVerstat and StripVerstat never
// panic, fail only with stir errors, and that adding or stripping verstat
// never changes the number a header carries. Seeds are in
// testdata/fuzz/FuzzTN.
func FuzzTN(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []Rules{{}, NANP()} {
			if c, err := Canonical(s, r); err != nil {
				if stir.As(err) == nil {
					t.Fatalf("Canonical error is not a *stir.Error: %v", err)
				}
			} else if !ValidClaimTN(c) {
				t.Fatalf("Canonical(%q) = %q, not a claim TN", s, c)
			} else if c2, err := Canonical(c, Rules{}); err != nil || c2 != c {
				t.Fatalf("Canonical(%q) = %q is not stable: %q, %v", s, c, c2, err)
			}
		}

		want, err := FromHeader(s, NANP())
		if err != nil && stir.As(err) == nil {
			t.Fatalf("FromHeader error is not a *stir.Error: %v", err)
		}
		if err == nil && !ValidClaimTN(want) {
			t.Fatalf("FromHeader(%q) = %q, not a claim TN", s, want)
		}

		stripped := StripVerstat(s)
		if again := StripVerstat(stripped); again != stripped {
			t.Fatalf("StripVerstat not idempotent: %q, then %q", stripped, again)
		}
		const marker = "Zq9-marker"
		added := AddVerstat(s, marker)
		if !containsFold(s, marker) && containsFold(StripVerstat(added), marker) {
			t.Fatalf("StripVerstat(%q) kept the verstat AddVerstat put in", added)
		}
		if err != nil {
			return
		}
		if !strings.Contains(added, ";verstat="+marker) {
			t.Fatalf("AddVerstat(%q) = %q has no verstat", s, added)
		}
		for _, v := range []string{stripped, added} {
			got, err := FromHeader(v, NANP())
			if err != nil || got != want {
				t.Fatalf("FromHeader(%q) = %q, %v; FromHeader(%q) = %q", v, got, err, s, want)
			}
		}
	})
}
