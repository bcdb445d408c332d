package core

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
)

// TestPolicyDecidesAttestation: a requested attestation may only lower
// what the policy grants. Before the fix the policy ran only when the
// request named no level, so "A" from an unknown source was signed A.
func TestPolicyDecidesAttestation(t *testing.T) {
	lab, err := certs.NewLab(certs.LabOptions{Now: testNow.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Options{
		Customers: []policy.Customer{
			{Name: "pbx", Numbers: []string{"12155550121"}, Sources: []string{"192.0.2.10"}},
			{Name: "carrier", Sources: []string{"192.0.2.20"}, AttestOverride: true},
		},
		Gateways: []string{"198.51.100.0/24"},
		Default:  "", // unknown sources are refused
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(SignerOptions{Credential: cred, X5U: "https://cert.example.org/sp.pem", Numbers: tn.NANP(), Policy: pol,
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	const owned, other = "12155550121", "12155550199"
	for _, tc := range []struct {
		name, source, orig string
		attest             stir.Attestation
		trusted            bool
		want               stir.Attestation // "" = refused with sign_not_allowed
	}{
		{"unknown source asks A", "203.0.113.9", other, "A", false, ""},
		{"unknown source asks nothing", "203.0.113.9", other, "", false, ""},
		{"customer granted B asks A", "192.0.2.10", other, "A", false, "B"},
		{"customer granted B asks C", "192.0.2.10", other, "C", false, "C"},
		{"customer granted A asks B", "192.0.2.10", owned, "B", false, "B"},
		{"customer granted A", "192.0.2.10", owned, "", false, "A"},
		{"gateway asks A", "198.51.100.7", owned, "A", false, "C"},
		{"override customer asks A", "192.0.2.20", other, "A", false, "A"},
		{"override customer asks nothing", "192.0.2.20", other, "", false, "B"},
		{"trusted local caller", "", other, "A", true, "A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Sign(context.Background(), SignRequest{Orig: tc.orig, Dest: []string{"12155550131"},
				Attest: tc.attest, Source: tc.source, Trusted: tc.trusted, Client: "c1"})
			if tc.want == "" {
				if !errors.Is(err, stir.ErrSignNotAllowed) {
					t.Fatalf("got %+v, %v; want sign_not_allowed", res, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Attest != tc.want || res.Client != "c1" || res.Why == "" {
				t.Fatalf("attest %s (why %q, client %q), want %s", res.Attest, res.Why, res.Client, tc.want)
			}
		})
	}
}
