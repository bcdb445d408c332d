package core

import (
	"context"
	"crypto"
	"crypto/x509"
	"strconv"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
)

// Conformance §6 C1-C3 through the public Signer and Verifier: delegate
// certificates (RFC 9060) issued by a service provider's CA under a
// delegation-capable STI-CA, with JWT claim constraints (RFC 9118).

type delegatePKI struct {
	f *fixture
}

// ca issues a CA certificate or fails the test.
func (d delegatePKI) ca(o certs.CAOptions) (*x509.Certificate, crypto.Signer) {
	d.f.t.Helper()
	c, k, err := d.f.lab.IssueCA(o)
	if err != nil {
		d.f.t.Fatal(err)
	}
	return c, k
}

// signer issues a leaf from o under chain[0] (whose key is key), serves the
// chain at path, and returns a Signer for it. nil on a refused credential.
func (d delegatePKI) signer(path string, o certs.LeafOptions, chain ...*x509.Certificate) *Signer {
	d.f.t.Helper()
	leaf, k, err := d.f.lab.IssueLeaf(o)
	if err != nil {
		d.f.t.Fatal(err)
	}
	body := certs.EncodePEM(append([]*x509.Certificate{leaf}, chain...)...)
	keyPEM, err := certs.KeyPEM(k)
	if err != nil {
		d.f.t.Fatal(err)
	}
	cred, err := certs.LoadSigner(keyPEM, body)
	if err != nil {
		d.f.t.Fatal(err)
	}
	s, err := NewSigner(SignerOptions{Credential: cred, X5U: d.f.url(path, body), Numbers: tn.NANP(),
		Now: func() time.Time { return testNow }})
	if err != nil {
		d.f.t.Fatal(err)
	}
	return s
}

func TestVerifyDelegateConformance(t *testing.T) {
	f := newFixture(t)
	d := delegatePKI{f}
	// A delegation-capable STI-CA, one with anyPolicy, and below them a
	// service provider's SPC-only CA, which delegates a range of 100
	// numbers to a CA of its own (house reading C1: the issuer of a TN or
	// range certificate carries a TNAuthList).
	stica, sticaKey := d.ca(certs.CAOptions{PathLen: 2, Name: "STI-CA delegating"})
	anyCA, anyKey := d.ca(certs.CAOptions{PathLen: 1, AnyPolicy: true, Name: "STI-CA anyPolicy"})
	spCA, spKey := d.ca(certs.CAOptions{Parent: stica, ParentKey: sticaKey, PathLen: 1, TNAuth: certs.TNAuthList{{SPC: "1234"}}, Name: "SP CA"})
	rangeCA, rangeKey := d.ca(certs.CAOptions{Parent: spCA, ParentKey: spKey,
		TNAuth: certs.TNAuthList{{Range: &certs.TNRange{Start: "12155550100", Count: 100}}}, Name: "SP range CA"})

	one := certs.TNAuthList{{TN: origTN}}
	sub := certs.TNAuthList{{Range: &certs.TNRange{Start: "12155550100", Count: 50}}}
	spill := certs.TNAuthList{{Range: &certs.TNRange{Start: "12155550120", Count: 100}}}
	elsewhere := certs.TNAuthList{{TN: "12155550999"}}

	tnUnder := d.signer("/d-tn.pem", certs.LeafOptions{TNAuth: one, Parent: spCA, ParentKey: spKey}, spCA, stica)
	rangeUnder := d.signer("/d-range.pem", certs.LeafOptions{TNAuth: sub, Parent: rangeCA, ParentKey: rangeKey}, rangeCA, spCA, stica)
	spilling := d.signer("/d-spill.pem", certs.LeafOptions{TNAuth: spill, Parent: rangeCA, ParentKey: rangeKey}, rangeCA, spCA, stica)
	underSTICA := d.signer("/d-sti.pem", certs.LeafOptions{TNAuth: one}, f.lab.CA)
	anyPolicy := d.signer("/any.pem", certs.LeafOptions{Parent: anyCA, ParentKey: anyKey}, anyCA)
	constrained := d.signer("/jwtcc.pem", certs.LeafOptions{TNAuth: one, Parent: spCA, ParentKey: spKey,
		Constraints: &certs.ClaimConstraints{
			MustInclude:     []string{"attest", "origid"},
			PermittedValues: []certs.PermittedValues{{Claim: "attest", Values: []string{"A", "B"}}},
			MustExclude:     []string{"rcd"},
		}}, spCA, stica)
	needsRCD := d.signer("/jwtcc-rcd.pem", certs.LeafOptions{TNAuth: one, Parent: spCA, ParentKey: spKey,
		Constraints: &certs.ClaimConstraints{MustInclude: []string{"rcd"}}}, spCA, stica)

	// A token the delegate signer cannot make: its number is outside the
	// certificate (the Signer refuses, see TestSignDelegate), so it is
	// built by hand with the certificate's key.
	outside := d.signer("/d-else.pem", certs.LeafOptions{TNAuth: elsewhere, Parent: spCA, ParentKey: spKey}, spCA, stica)
	rawFor := func(s *Signer, claims string) string {
		return raw(t, s.opts.Credential.Key, hdrJSON(s.X5U()), claims, s.X5U())
	}
	sign := func(s *Signer, attest stir.Attestation) string {
		r, err := s.Sign(context.Background(), SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: attest, OrigID: uuidOK})
		if err != nil {
			t.Fatal(err)
		}
		return r.Identity
	}
	withRCD := claimsJSON(testNow.Unix())
	withRCD = withRCD[:len(withRCD)-1] + `,"rcd":{"nam":"ACME Corp"}}`

	cases := []reviewCase{
		// C1: numbers inside the certificate, certificates inside their issuers.
		{name: "delegate TN under an SPC CA", identity: []string{sign(tnUnder, "A")}, result: stir.Pass},
		{name: "delegate range under a range CA", identity: []string{sign(rangeUnder, "A")}, result: stir.Pass},
		{name: "delegate strict mode", identity: []string{sign(tnUnder, "A")}, mod: func(o *VerifierOptions) { o.Strict = true }, result: stir.Pass},
		{name: "orig outside the delegate certificate", identity: []string{rawFor(outside, claimsJSON(testNow.Unix()))}, result: stir.Fail, want: stir.ErrCertTNScope},
		{name: "range spills over its issuer's", identity: []string{sign(spilling, "A")}, result: stir.Fail, want: stir.ErrCertTNScope},
		{name: "delegate issued by an STI-CA without TNAuthList", identity: []string{sign(underSTICA, "A")}, result: stir.Fail, want: stir.ErrCertTNScope},
		// C2: JWT claim constraints.
		{name: "constraints met", identity: []string{sign(constrained, "B")}, result: stir.Pass},
		{name: "attest not permitted", identity: []string{sign(constrained, "C")}, result: stir.Fail, want: stir.ErrClaimConstraint},
		{name: "excluded claim present", identity: []string{rawFor(constrained, withRCD)}, result: stir.Fail, want: stir.ErrClaimConstraint},
		{name: "required claim missing", identity: []string{sign(needsRCD, "A")}, result: stir.Fail, want: stir.ErrClaimConstraint},
		{name: "required claim present", identity: []string{rawFor(needsRCD, withRCD)}, result: stir.Pass},
		// C3: anyPolicy on the STI-CA.
		{name: "STI-CA with anyPolicy", identity: []string{sign(anyPolicy, "A")}, result: stir.Pass},
		{name: "STI-CA with anyPolicy strict", identity: []string{sign(anyPolicy, "A")}, mod: func(o *VerifierOptions) { o.Strict = true }, result: stir.Pass},
	}
	f.runReview(t, cases)

	// A diversion signed with a delegate certificate must cover div.tn.
	shaken := f.sign(SignRequest{})
	fwdOK := d.signer("/d-div.pem", certs.LeafOptions{TNAuth: certs.TNAuthList{{TN: destTN}}, Parent: spCA, ParentKey: spKey}, spCA, stica)
	fwdBad := d.signer("/d-div-bad.pem", certs.LeafOptions{TNAuth: certs.TNAuthList{{TN: "12155550999"}}, Parent: spCA, ParentKey: spKey}, spCA, stica)
	divOK := divert(t, fwdOK, []string{shaken}, destTN, hopTN(1), testNow)
	badClaims := `{"dest":{"tn":["` + hopTN(1) + `"]},"div":{"tn":"` + destTN + `"},"iat":` + itoa64(testNow.Unix()) + `,"orig":{"tn":"` + origTN + `"}}`
	divBad := raw(t, fwdBad.opts.Credential.Key, `{"alg":"ES256","ppt":"div","typ":"passport","x5u":"`+fwdBad.X5U()+`"}`, badClaims, fwdBad.X5U())
	divBad = divBad[:len(divBad)-len("shaken")] + "div"
	for _, tc := range []struct {
		name string
		div  string
		want *stir.Error
	}{{"div by a delegate covering div.tn", divOK, nil}, {"div by a delegate not covering div.tn", divBad, stir.ErrCertTNScope}} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.verifier(nil).Verify(context.Background(), VerifyRequest{Identity: []string{shaken, tc.div}, From: fromHdr, To: toHdr, Target: "sip:+" + hopTN(1) + "@example.net"})
			want := stir.Pass
			if tc.want != nil {
				want = stir.Fail
			}
			checkResult(t, r, want, tc.want)
		})
	}
}

func TestSignDelegate(t *testing.T) {
	f := newFixture(t)
	d := delegatePKI{f}
	stica, sticaKey := d.ca(certs.CAOptions{PathLen: 1})
	spCA, spKey := d.ca(certs.CAOptions{Parent: stica, ParentKey: sticaKey, TNAuth: certs.TNAuthList{{SPC: "1234"}}})
	s := d.signer("/d.pem", certs.LeafOptions{TNAuth: certs.TNAuthList{{TN: origTN}}, Parent: spCA, ParentKey: spKey}, spCA, stica)
	ctx := context.Background()
	if _, err := s.Sign(ctx, SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A"}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Sign(ctx, SignRequest{Orig: "12155550199", Dest: []string{destTN}, Attest: "A"})
	if e := stir.As(err); e == nil || e.Name != stir.ErrSignNotAllowed.Name {
		t.Fatalf("signing outside the delegate certificate: %v", err)
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
