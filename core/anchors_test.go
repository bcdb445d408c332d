package core

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
)

// TestAnchorsReloadOnFileChange: the trust anchor bundle is replaced on
// disk (by a rename, as an operator or a package manager does); the next
// verification uses the new list, without a signal, and chains cached
// under the old list are not served under the new one.
func TestAnchorsReloadOnFileChange(t *testing.T) {
	f := newFixture(t)
	other, err := certs.NewLab(certs.LabOptions{Now: testNow.Add(-24 * time.Hour), SPC: "5678"})
	if err != nil {
		t.Fatal(err)
	}
	otherCred, err := other.Signer()
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, err := NewSigner(SignerOptions{Credential: otherCred, X5U: f.url("/other.pem", other.ChainPEM()),
		Numbers: tn.NANP(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	bundle := filepath.Join(dir, "anchors.pem")
	replace := func(certsPEM []byte) {
		t.Helper()
		tmp := filepath.Join(dir, "new.pem")
		if err := os.WriteFile(tmp, certsPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, bundle); err != nil {
			t.Fatal(err)
		}
	}
	replace(certs.EncodePEM(f.lab.Root))
	anchors, err := certs.LoadAnchors(certs.AnchorOptions{Files: []string{bundle}, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifier(func(o *VerifierOptions) {
		o.Roots, o.Anchors = nil, anchors
		o.Fetch.Timeout = 30 * time.Second // a loaded CI host; no test here is about the bound
	})

	mine := f.sign(SignRequest{})
	r, err := otherSigner.Sign(context.Background(), SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", OrigID: uuidOK})
	if err != nil {
		t.Fatal(err)
	}
	theirs := r.Identity
	check := func(identity string, want string) {
		t.Helper()
		res := v.Verify(context.Background(), VerifyRequest{Identity: []string{identity}, From: fromHdr, To: toHdr})
		if got := res.Error; got != want || (want == "" && res.Result != stir.Pass) {
			t.Fatalf("error %q (%s), want %q", got, res.Detail, want)
		}
	}
	check(mine, "")
	check(theirs, "cert_untrusted")

	// A broken replacement is refused: the current list stays.
	replace([]byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"))
	check(mine, "")

	replace(certs.EncodePEM(other.Root))
	check(mine, "cert_untrusted") // cached under the old list, not served
	check(theirs, "")
	if g := anchors.Generation(); g != 1 {
		t.Fatalf("generation %d, want 1", g)
	}

	// Both anchors: both pass.
	replace(certs.EncodePEM(f.lab.Root, other.Root))
	check(mine, "")
	check(theirs, "")
}
