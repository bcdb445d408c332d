package core

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
)

// Conformance §6 D1-D5 through the public Verifier: a diverted call carries
// the originating SHAKEN PASSporT and one div PASSporT per diversion, each
// signed by the diverting provider with its own certificate.

// Numbers of a call 2155550121 → 2155550131, forwarded on to 2155550141,
// 2155550151, ...
func hopTN(i int) string { return "121555501" + string(rune('3'+i)) + "1" }

// divSigner is a second service provider (its own SPC and certificate under
// the lab's CA), or, with an other lab, one nobody trusts.
func (f *fixture) divSigner(lab *certs.Lab, spc, path string) *Signer {
	f.t.Helper()
	leaf, key, err := lab.IssueLeaf(certs.LeafOptions{SPC: spc})
	if err != nil {
		f.t.Fatal(err)
	}
	keyPEM, err := certs.KeyPEM(key)
	if err != nil {
		f.t.Fatal(err)
	}
	cred, err := certs.LoadSigner(keyPEM, certs.EncodePEM(leaf, lab.CA))
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := NewSigner(SignerOptions{Credential: cred, X5U: f.url(path, certs.EncodePEM(leaf, lab.CA)),
		Numbers: tn.NANP(), Now: func() time.Time { return testNow }})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// divert signs the diversion of a call carrying received from the target
// div to dest.
func divert(t *testing.T, s *Signer, received []string, div, dest string, at time.Time) string {
	t.Helper()
	r, err := s.SignDiv(context.Background(), DivRequest{Identity: received, Div: div, Dest: []string{dest}, At: at})
	if err != nil {
		t.Fatal(err)
	}
	return r.Identity
}

func TestVerifyDivConformance(t *testing.T) {
	f := newFixture(t)
	shaken := f.sign(SignRequest{})
	fwd := f.divSigner(f.lab, "T2DV", "/div.pem")
	other, err := certs.NewLab(certs.LabOptions{Now: testNow.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	rogue := f.divSigner(other, "T9RG", "/rogue.pem")

	// chain returns the SHAKEN header and n diversions, hop i diverting
	// hopTN(i) to hopTN(i+1).
	chain := func(n int) []string {
		hdrs := []string{shaken}
		for i := 0; i < n; i++ {
			hdrs = append(hdrs, divert(t, fwd, hdrs, hopTN(i), hopTN(i+1), testNow))
		}
		return hdrs
	}
	one, two, five := chain(1), chain(2), chain(5)
	reversed := []string{two[2], two[1], two[0]}
	target := func(i int) string { return "sip:+" + hopTN(i) + "@example.net;user=phone" }

	// Hand-built div PASSporTs, signed with the forwarder's key, for the
	// claims SignDiv will not produce.
	fwdKey := fwd.opts.Credential.Key
	divHdr := `{"alg":"ES256","ppt":"div","typ":"passport","x5u":"` + fwd.X5U() + `"}`
	rawDiv := func(claims string) string {
		v := raw(t, fwdKey, divHdr, claims, fwd.X5U())
		return strings.Replace(v, "ppt=shaken", "ppt=div", 1)
	}
	divClaims := func(orig, div, dest string) string {
		return string(passport.MarshalClaims(passport.Claims{Orig: orig, Div: div, Dest: []string{dest}, IAT: testNow.Unix()}))
	}
	forgedSig := func(v string) string {
		tok, params, _ := strings.Cut(v, ";")
		p := strings.Split(tok, ".")
		p[2] = "A" + p[2][1:]
		if p[2] == strings.Split(tok, ".")[2] {
			p[2] = "B" + p[2][1:]
		}
		return strings.Join(p, ".") + ";" + params
	}

	tests := []struct {
		name     string
		identity []string
		to       string // default: the SHAKEN dest
		target   string // Request-URI; default none
		mod      func(*VerifierOptions)
		result   stir.Outcome
		want     *stir.Error
		div      []string // verified div.tn on pass
	}{
		// D1: a chain in any order, up to five diversions.
		{name: "pass one diversion", identity: one, target: target(1), result: stir.Pass, div: []string{hopTN(0)}},
		{name: "pass bare-number target", identity: one, target: "+1 " + hopTN(1)[1:], result: stir.Pass, div: []string{hopTN(0)}},
		{name: "pass To is the new target", identity: one, to: "<sip:+" + hopTN(1) + "@example.net>", result: stir.Pass, div: []string{hopTN(0)}},
		{name: "pass two diversions", identity: two, target: target(2), result: stir.Pass, div: []string{hopTN(0), hopTN(1)}},
		{name: "pass headers reversed", identity: reversed, target: target(2), result: stir.Pass, div: []string{hopTN(0), hopTN(1)}},
		{name: "pass five diversions", identity: five, target: target(5), result: stir.Pass,
			div: []string{hopTN(0), hopTN(1), hopTN(2), hopTN(3), hopTN(4)}},
		{name: "pass strict mode", identity: two, target: target(2), mod: func(o *VerifierOptions) { o.Strict = true }, result: stir.Pass, div: []string{hopTN(0), hopTN(1)}},
		{name: "pass History-Info index", identity: []string{shaken, rawDiv(strings.Replace(divClaims(origTN, hopTN(0), hopTN(1)), `"div":{`, `"div":{"hi":"1.1.2",`, 1))},
			target: target(1), mod: func(o *VerifierOptions) { o.Strict = true }, result: stir.Pass, div: []string{hopTN(0)}},
		{name: "pass undecodable div header ignored", identity: []string{shaken, strings.Replace(shaken, "ppt=shaken", "ppt=div", 1)}, result: stir.Pass},
		{name: "six diversions too many", identity: append(chain(5), divert(t, fwd, five, hopTN(5), hopTN(6), testNow)), target: target(6), result: stir.Fail, want: stir.ErrTooManyIdentity},

		// D2: no SHAKEN PASSporT to divert.
		{name: "div without SHAKEN", identity: one[1:], target: target(1), result: stir.Fail, want: stir.ErrDivNoShaken},
		{name: "div without SHAKEN required", identity: one[1:], mod: func(o *VerifierOptions) { o.RequireIdentity = true }, result: stir.Fail, want: stir.ErrDivNoShaken},

		// D3: the links.
		{name: "missing middle link", identity: []string{five[0], five[1], five[3]}, target: target(3), result: stir.Fail, want: stir.ErrDivChainBroken},
		{name: "div.tn not the SHAKEN dest", identity: []string{shaken, rawDiv(divClaims(origTN, hopTN(3), hopTN(4)))}, target: target(4), result: stir.Fail, want: stir.ErrDivChainBroken},
		{name: "orig changed", identity: []string{shaken, rawDiv(divClaims("12155550199", hopTN(0), hopTN(1)))}, target: target(1), result: stir.Fail, want: stir.ErrDivOrigMismatch},
		{name: "last dest is not the target", identity: two, target: target(1), result: stir.Fail, want: stir.ErrDestMismatch},
		{name: "target still the SHAKEN dest", identity: one, target: target(0), result: stir.Fail, want: stir.ErrDestMismatch},
		{name: "broken chain reports the undecodable div", identity: []string{shaken, two[2], rawDiv(strings.Replace(divClaims(origTN, hopTN(0), hopTN(1)), `"div"`, `"dvi"`, 1))},
			target: target(2), result: stir.Fail, want: stir.ErrDivInvalid},

		// D4: each div PASSporT is signed by a valid, trusted certificate.
		{name: "untrusted div signer", identity: []string{shaken, divert(t, rogue, []string{shaken}, hopTN(0), hopTN(1), testNow)}, target: target(1), result: stir.Fail, want: stir.ErrCertUntrusted},
		{name: "div signature forged", identity: []string{shaken, forgedSig(one[1])}, target: target(1), result: stir.Fail, want: stir.ErrSignatureInvalid},
		{name: "div x5u not info", identity: []string{shaken, strings.Replace(two[1], "info=<"+fwd.X5U(), "info=<"+f.x5u, 1), two[2]}, target: target(2), result: stir.Fail, want: stir.ErrX5UMismatch},
		{name: "JOSE shaken under ppt=div", identity: []string{shaken, strings.Replace(shaken, "ppt=shaken", "ppt=div", 1), two[2]},
			target: target(2), result: stir.Fail, want: stir.ErrPptInvalid},

		// D5: freshness of every link.
		{name: "stale div", identity: []string{shaken, divert(t, fwd, []string{shaken}, hopTN(0), hopTN(1), testNow.Add(-2*time.Minute))}, target: target(1), result: stir.Fail, want: stir.ErrStaleIAT},
		{name: "future div", identity: []string{shaken, divert(t, fwd, []string{shaken}, hopTN(0), hopTN(1), testNow.Add(2*time.Minute))}, target: target(1), result: stir.Fail, want: stir.ErrFutureIAT},
	}
	// The links are checked in as many goroutines as there are processors
	// beside the caller's: none with one, one per link with many. The
	// table must come out the same whatever the split.
	for _, procs := range []int{1, 2, 3, 8} {
		prev := runtime.GOMAXPROCS(procs)
		for _, tc := range tests {
			t.Run(tc.name+",procs="+strconv.Itoa(procs), func(t *testing.T) {
				v := f.verifier(tc.mod)
				req := VerifyRequest{Identity: tc.identity, From: fromHdr, To: tc.to, Target: tc.target}
				if req.To == "" {
					req.To = toHdr
				}
				r := v.Verify(context.Background(), req)
				checkResult(t, r, tc.result, tc.want)
				var got []string
				for _, d := range r.Div {
					got = append(got, d.TN)
				}
				if strings.Join(got, ",") != strings.Join(tc.div, ",") {
					t.Fatalf("div %v, want %v", got, tc.div)
				}
			})
		}
		runtime.GOMAXPROCS(prev)
	}
}

func TestSignDiv(t *testing.T) {
	f := newFixture(t)
	shaken := f.sign(SignRequest{})
	fwd := f.divSigner(f.lab, "T2DV", "/div.pem")
	ctx := context.Background()

	// The diverting number defaults to the received dest; Diversion header
	// values and History-Info indexes are accepted.
	r, err := fwd.SignDiv(ctx, DivRequest{Identity: []string{shaken}, Target: "sip:+" + hopTN(1) + "@example.net", HI: "1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Div != destTN || r.Orig != origTN || r.Dest[0] != hopTN(1) || r.HI != "1.1" || !strings.HasSuffix(r.Identity, ";ppt=div") {
		t.Fatalf("%+v", r)
	}
	tok, err := passport.ParseAs(strings.SplitN(r.Identity, ";", 2)[0], passport.PptDiv)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"dest":{"tn":["` + hopTN(1) + `"]},"div":{"hi":"1.1","tn":"` + destTN + `"},"iat":` + strconv.FormatInt(testNow.Unix(), 10) + `,"orig":{"tn":"` + origTN + `"}}`
	if string(tok.ClaimsJSON()) != want || !tok.Canonical() {
		t.Fatalf("claims %s, want %s", tok.ClaimsJSON(), want)
	}
	// A second diversion defaults to the first one's new target.
	r2, err := fwd.SignDiv(ctx, DivRequest{Identity: []string{r.Identity, shaken}, Dest: []string{hopTN(2)}})
	if err != nil || r2.Div != hopTN(1) {
		t.Fatalf("second diversion: %+v %v", r2, err)
	}
	r3, err := fwd.SignDiv(ctx, DivRequest{Identity: []string{shaken}, Div: "<sip:+1" + destTN[1:] + "@example.net>;reason=unconditional", Dest: []string{hopTN(1)}})
	if err != nil || r3.Div != destTN {
		t.Fatalf("Diversion header: %+v %v", r3, err)
	}

	for _, tc := range []struct {
		name string
		req  DivRequest
	}{
		{"no SHAKEN received", DivRequest{Identity: []string{r.Identity}, Dest: []string{hopTN(2)}}},
		{"nothing received", DivRequest{Dest: []string{hopTN(2)}}},
		{"no target", DivRequest{Identity: []string{shaken}}},
		{"bad diverting number", DivRequest{Identity: []string{shaken}, Div: "abc", Dest: []string{hopTN(1)}}},
		{"target is the diverting number", DivRequest{Identity: []string{shaken}, Dest: []string{destTN}}},
		{"hostile hi", DivRequest{Identity: []string{shaken}, Dest: []string{hopTN(1)}, HI: `1"}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fwd.SignDiv(ctx, tc.req)
			if e := stir.As(err); e == nil || e.Name != stir.ErrSignInput.Name {
				t.Fatalf("err %v, want %s", err, stir.ErrSignInput.Name)
			}
		})
	}
}

// FuzzVerifyDiv feeds the Verifier a SHAKEN header with fuzzed div headers
// and Request-URI: whatever arrives, a result with a known code, and a
// "div" list only on pass.
func FuzzVerifyDiv(f *testing.F) {
	lab, err := certs.NewLab(certs.LabOptions{Now: testNow.Add(-24 * time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	const u = "https://cert.example.org/sp.pem"
	cred, err := lab.Signer()
	if err != nil {
		f.Fatal(err)
	}
	s, err := NewSigner(SignerOptions{Credential: cred, X5U: u, Numbers: tn.NANP(), Now: func() time.Time { return testNow }})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	good, err := s.Sign(ctx, SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", OrigID: uuidOK})
	if err != nil {
		f.Fatal(err)
	}
	d1, err := s.SignDiv(ctx, DivRequest{Identity: []string{good.Identity}, Dest: []string{hopTN(1)}})
	if err != nil {
		f.Fatal(err)
	}
	d2, err := s.SignDiv(ctx, DivRequest{Identity: []string{good.Identity, d1.Identity}, Dest: []string{hopTN(2)}})
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(VerifierOptions{Roots: lab.Roots(), Numbers: tn.NANP(),
		Fetch: x5u.Options[*certs.Credential]{Offline: true, PreloadBytes: map[string][]byte{u: lab.ChainPEM()}},
		Now:   func() time.Time { return testNow }})
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	f.Add(d1.Identity, d2.Identity, "sip:+"+hopTN(2)+"@example.net")
	f.Add(d2.Identity, d1.Identity, "tel:+"+hopTN(2))
	f.Add(d1.Identity, "", "sip:+"+hopTN(1)+"@example.net")
	f.Add(strings.Replace(d1.Identity, "ppt=div", "ppt=shaken", 1), d2.Identity, "")

	codes := map[int]bool{403: true, 428: true, 436: true, 437: true, 438: true}
	f.Fuzz(func(t *testing.T, div1, div2, target string) {
		ids := []string{good.Identity}
		for _, d := range []string{div1, div2} {
			if d != "" {
				ids = append(ids, d)
			}
		}
		r := v.Verify(ctx, VerifyRequest{Identity: ids, From: fromHdr, To: toHdr, Target: target})
		switch r.Result {
		case stir.Pass:
			if r.Verstat != stir.VerstatPassed || r.Err != nil {
				t.Fatalf("pass %+v", r)
			}
		case stir.Fail:
			if r.Err == nil || !codes[r.SIPCode] || len(r.Div) != 0 || r.Error == stir.ErrInternal.Name {
				t.Fatalf("fail %+v", r)
			}
		default:
			t.Fatalf("result %+v", r)
		}
	})
}
