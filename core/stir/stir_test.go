package stir

import "testing"

func TestNamesUniqueAndRanked(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range All() {
		if seen[e.Name] {
			t.Fatalf("duplicate name %s", e.Name)
		}
		seen[e.Name] = true
	}
	// Later rows outrank earlier ones; 436 sits below every other failure.
	order := []*Error{ErrNoIdentity, ErrX5UFetchFailed, ErrHeaderMalformed, ErrAlgUnsupported, ErrIATInvalid,
		ErrStaleIAT, ErrOrigMismatch, ErrCertUntrusted, ErrSignatureInvalid}
	for i := 1; i < len(order); i++ {
		if Rank(order[i]) <= Rank(order[i-1]) {
			t.Fatalf("Rank(%s)=%d not above Rank(%s)=%d", order[i].Name, Rank(order[i]), order[i-1].Name, Rank(order[i-1]))
		}
	}
	if Rank(ErrSignatureInvalid.With("x", nil)) != Rank(ErrSignatureInvalid) {
		t.Fatal("a detailed copy lost its rank")
	}
}
