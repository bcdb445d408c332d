package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/internal/testlog"
)

// The conformance table of ../shared/conformance/README.md §2 and the
// adversarial inputs of §4, run through the public Verifier with a real
// lab PKI served over TLS on loopback.

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

const (
	fromHdr = `"Alice" <sip:+12155550121@example.com;user=phone>;tag=abc`
	toHdr   = `<sip:+12155550131@example.net;user=phone>`
	origTN  = "12155550121"
	destTN  = "12155550131"
	uuidOK  = "123e4567-e89b-12d3-a456-426614174000"
)

type fixture struct {
	t      *testing.T
	lab    *certs.Lab
	srv    *httptest.Server
	x5u    string // good chain URL on the TLS server
	paths  map[string][]byte
	mu     sync.Mutex
	hits   map[string]int
	signer *Signer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	lab, err := certs.NewLab(certs.LabOptions{Now: testNow.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, lab: lab, paths: map[string][]byte{}, hits: map[string]int{}}
	f.paths["/sp.pem"] = lab.ChainPEM()
	f.srv = testlog.NewTLSServer(t, http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.x5u = f.srv.URL + "/sp.pem"
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	f.signer, err = NewSigner(SignerOptions{Credential: cred, X5U: f.x5u, Numbers: tn.NANP(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	body, ok := f.paths[r.URL.Path]
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/redirect":
		http.Redirect(w, r, "/sp.pem", http.StatusFound)
	case !ok:
		http.NotFound(w, r)
	default:
		_, _ = w.Write(body)
	}
}

func (f *fixture) url(path string, body []byte) string {
	f.mu.Lock()
	f.paths[path] = body
	f.mu.Unlock()
	return f.srv.URL + path
}

func (f *fixture) options() VerifierOptions {
	pool := x509.NewCertPool()
	pool.AddCert(f.srv.Certificate())
	host := strings.TrimPrefix(f.srv.URL, "https://")
	return VerifierOptions{
		Roots:   f.lab.Roots(),
		Numbers: tn.NANP(),
		Fetch: x5u.Options[*certs.Credential]{
			Policy:  x5u.Policy{LabHosts: []string{host}},
			RootCAs: pool,
		},
		Now: func() time.Time { return testNow },
	}
}

func (f *fixture) verifier(mod func(*VerifierOptions)) *Verifier {
	o := f.options()
	if mod != nil {
		mod(&o)
	}
	v, err := NewVerifier(o)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { v.Close() })
	return v
}

func (f *fixture) sign(req SignRequest) string {
	f.t.Helper()
	if req.Orig == "" && req.From == "" {
		req.Orig = origTN
	}
	if len(req.Dest) == 0 && req.To == "" {
		req.Dest = []string{destTN}
	}
	if req.Attest == "" {
		req.Attest = "A"
	}
	if req.OrigID == "" {
		req.OrigID = uuidOK
	}
	r, err := f.signer.Sign(context.Background(), req)
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Identity
}

var b64 = base64.RawURLEncoding

// raw builds an Identity value from literal JSON signed by key.
func raw(t *testing.T, key *ecdsa.PrivateKey, header, claims, info string) string {
	t.Helper()
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodES256.Sign(in, key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig) + ";info=<" + info + ">;alg=ES256;ppt=shaken"
}

func hdrJSON(x5u string) string {
	return `{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"` + x5u + `"}`
}

func claimsJSON(iat int64) string {
	return string(passport.MarshalClaims(passport.Claims{Attest: "A", Dest: []string{destTN}, IAT: iat, Orig: origTN, OrigID: uuidOK}))
}

// withInfo re-points a signed value's x5u and info at u, re-signing with key.
func (f *fixture) signedAt(u string, key *ecdsa.PrivateKey) string {
	return raw(f.t, key, hdrJSON(u), claimsJSON(testNow.Unix()), u)
}

func TestVerifyConformance(t *testing.T) {
	f := newFixture(t)
	good := f.sign(SignRequest{})
	tok := strings.SplitN(good, ";", 2)[0]
	parts := strings.Split(tok, ".")
	key := f.lab.LeafKey

	// Credentials that fail row 11.
	other, err := certs.NewLab(certs.LabOptions{Now: testNow.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	untrustedURL := f.url("/untrusted.pem", other.ChainPEM())
	expLeaf, expKey, err := f.lab.IssueLeaf(certs.LeafOptions{NotBefore: testNow.Add(-48 * time.Hour), NotAfter: testNow.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	expiredURL := f.url("/expired.pem", certs.EncodePEM(expLeaf, f.lab.CA))
	noTNLeaf, noTNKey, err := f.lab.IssueLeaf(certs.LeafOptions{NoTNAuthList: true})
	if err != nil {
		t.Fatal(err)
	}
	noTNURL := f.url("/notn.pem", certs.EncodePEM(noTNLeaf, f.lab.CA))
	caLeaf, caKey, err := f.lab.IssueLeaf(certs.LeafOptions{IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	caURL := f.url("/ca-leaf.pem", certs.EncodePEM(caLeaf, f.lab.CA))
	revLeaf, revKey, err := f.lab.IssueLeaf(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	revokedURL := f.url("/revoked.pem", certs.EncodePEM(revLeaf, f.lab.CA))
	if _, err := f.lab.Revoke(revLeaf); err != nil {
		t.Fatal(err)
	}
	crlSet, err := f.lab.CRLSet()
	if err != nil {
		t.Fatal(err)
	}
	notPEM := f.url("/garbage.pem", []byte("hello, this is not a certificate"))

	ec := func(k any) *ecdsa.PrivateKey { return k.(*ecdsa.PrivateKey) }
	hdr := func(old, new string) string { return strings.Replace(hdrJSON(f.x5u), old, new, 1) }
	claims := func(old, new string) string { return strings.Replace(claimsJSON(testNow.Unix()), old, new, 1) }
	params := ";info=<" + f.x5u + ">;alg=ES256;ppt=shaken"

	tests := []struct {
		name     string
		identity []string
		from     string
		pai      string
		to       string
		date     string
		mod      func(*VerifierOptions)
		result   stir.Outcome
		want     *stir.Error // nil: pass
	}{
		// Row 14: pass, in its several dresses.
		{name: "pass", identity: []string{good}, result: stir.Pass},
		{name: "pass quoted ppt", identity: []string{tok + ";info=<" + f.x5u + ">;alg=ES256;ppt=\"shaken\""}, result: stir.Pass},
		{name: "pass reordered params with SWS", identity: []string{tok + " ; ppt=shaken ;alg = ES256; info=<" + f.x5u + ">"}, result: stir.Pass},
		{name: "pass no alg no ppt params", identity: []string{tok + ";info=<" + f.x5u + ">"}, result: stir.Pass},
		{name: "pass unknown param", identity: []string{good + ";foo=bar"}, result: stir.Pass},
		{name: "pass PAI preferred", identity: []string{good}, from: "<sip:+19995550000@x>", pai: "<sip:+12155550121@example.com>", result: stir.Pass},
		{name: "pass tel URIs", identity: []string{good}, from: "<tel:+1-215-555-0121>", to: "<tel:+12155550131>", result: stir.Pass},
		{name: "pass national From", identity: []string{good}, from: "<sip:2155550121@example.com>", result: stir.Pass},
		{name: "pass fresh Date", identity: []string{good}, date: FormatDate(testNow.Add(-10 * time.Second)), result: stir.Pass},
		{name: "pass inbound verstat ignored", identity: []string{good}, from: "<sip:+12155550121;verstat=TN-Validation-Passed@example.com>", result: stir.Pass},
		{name: "pass second header good", identity: []string{strings.Replace(good, parts[2][:4], "AAAA", 1), good}, result: stir.Pass},
		{name: "pass non-canonical relaxed", identity: []string{raw(t, key, hdrJSON(f.x5u), claims(`{`, `{ `), f.x5u)}, result: stir.Pass},

		// Row 2.
		{name: "none", identity: nil, result: stir.None},
		{name: "none required", identity: nil, mod: func(o *VerifierOptions) { o.RequireIdentity = true }, result: stir.None, want: stir.ErrNoIdentity},
		{name: "too many", identity: []string{good, good, good, good, good, good, good}, result: stir.Fail, want: stir.ErrTooManyIdentity},
		{name: "100 KB header", identity: []string{strings.Repeat("A", 100<<10) + params}, result: stir.Fail, want: stir.ErrIdentityTooLong},
		// Row 3.
		{name: "two segments", identity: []string{parts[0] + "." + parts[1] + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "four segments", identity: []string{tok + ".AAAA" + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "compact form", identity: []string{parts[0] + ".." + parts[2] + params}, result: stir.Fail, want: stir.ErrCompactForm},
		{name: "padding", identity: []string{parts[0] + "==." + parts[1] + "." + parts[2] + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "plus in segment", identity: []string{strings.Replace(tok, "e", "+", 1) + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "CRLF in segment", identity: []string{parts[0][:4] + "\r\n" + parts[0][4:] + "." + parts[1] + "." + parts[2] + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "info missing", identity: []string{tok + ";alg=ES256;ppt=shaken"}, result: stir.Fail, want: stir.ErrInfoMissing},
		{name: "info without brackets", identity: []string{tok + ";info=" + f.x5u + ";alg=ES256;ppt=shaken"}, result: stir.Fail, want: stir.ErrInfoMalformed},
		// Row 4.
		// A div PASSporT alone cannot complete a chain (§6 D2).
		{name: "ppt div param", identity: []string{tok + ";info=<" + f.x5u + ">;alg=ES256;ppt=div"}, result: stir.Fail, want: stir.ErrDivNoShaken},
		{name: "ppt other param", identity: []string{tok + ";info=<" + f.x5u + ">;alg=ES256;ppt=rph"}, result: stir.None},
		{name: "ppt other param required", identity: []string{tok + ";info=<" + f.x5u + ">;alg=ES256;ppt=rph"}, mod: func(o *VerifierOptions) { o.RequireIdentity = true }, result: stir.None, want: stir.ErrNotShaken},
		// Row 5.
		{name: "alg none", identity: []string{raw(t, key, hdr(`"ES256"`, `"none"`), claimsJSON(testNow.Unix()), f.x5u)}, result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "alg HS256 keyed with cert", identity: []string{hs256(t, hdr(`"ES256"`, `"HS256"`), claimsJSON(testNow.Unix()), f.lab.Leaf.Raw, f.x5u)}, result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "alg ES384", identity: []string{raw(t, key, hdr(`"ES256"`, `"ES384"`), claimsJSON(testNow.Unix()), f.x5u)}, result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "alg param ES384", identity: []string{tok + ";info=<" + f.x5u + ">;alg=ES384;ppt=shaken"}, result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "embedded jwk ignored", identity: []string{raw(t, key, hdr(`}`, `,"jwk":{"kty":"EC"}}`), claimsJSON(testNow.Unix()), f.x5u)}, result: stir.Pass},
		{name: "typ JWT", identity: []string{raw(t, key, hdr(`"passport"`, `"JWT"`), claimsJSON(testNow.Unix()), f.x5u)}, result: stir.Fail, want: stir.ErrTypInvalid},
		{name: "x5u differs from info", identity: []string{raw(t, key, hdrJSON(f.x5u), claimsJSON(testNow.Unix()), f.x5u+"x")}, result: stir.Fail, want: stir.ErrX5UMismatch},
		{name: "crit", identity: []string{raw(t, key, hdr(`}`, `,"crit":["div"]}`), claimsJSON(testNow.Unix()), f.x5u)}, result: stir.Fail, want: stir.ErrCritUnsupported},
		{name: "duplicate member", identity: []string{raw(t, key, hdrJSON(f.x5u), claims(`{`, `{"attest":"C",`), f.x5u)}, result: stir.Fail, want: stir.ErrJSONMalformed},
		// Row 6.
		{name: "iat string", identity: []string{raw(t, key, hdrJSON(f.x5u), claims(`"iat":`+itoa(testNow.Unix()), `"iat":"`+itoa(testNow.Unix())+`"`), f.x5u)}, result: stir.Fail, want: stir.ErrIATInvalid},
		{name: "dest as string", identity: []string{raw(t, key, hdrJSON(f.x5u), claims(`["`+destTN+`"]`, `"`+destTN+`"`), f.x5u)}, result: stir.Fail, want: stir.ErrDestInvalid},
		{name: "orig as uri", identity: []string{raw(t, key, hdrJSON(f.x5u), claims(`"orig":{"tn":"`+origTN+`"}`, `"orig":{"uri":"sip:a@b"}`), f.x5u)}, result: stir.Fail, want: stir.ErrOrigInvalid},
		{name: "plus in claim", identity: []string{raw(t, key, hdrJSON(f.x5u), claims(`"`+origTN+`"`, `"+`+origTN+`"`), f.x5u)}, result: stir.Fail, want: stir.ErrOrigInvalid},
		// Row 7.
		{name: "stale iat", identity: []string{raw(t, key, hdrJSON(f.x5u), claimsJSON(testNow.Add(-61*time.Second).Unix()), f.x5u)}, result: stir.Fail, want: stir.ErrStaleIAT},
		{name: "future iat", identity: []string{raw(t, key, hdrJSON(f.x5u), claimsJSON(testNow.Add(61*time.Second).Unix()), f.x5u)}, result: stir.Fail, want: stir.ErrFutureIAT},
		{name: "iat at limit", identity: []string{raw(t, key, hdrJSON(f.x5u), claimsJSON(testNow.Add(-60*time.Second).Unix()), f.x5u)}, result: stir.Pass},
		{name: "stale Date", identity: []string{good}, date: FormatDate(testNow.Add(-2 * time.Minute)), result: stir.Fail, want: stir.ErrStaleDate},
		{name: "bad Date", identity: []string{good}, date: "yesterday", result: stir.Fail, want: stir.ErrDateFormat},
		{name: "missing Date required", identity: []string{good}, mod: func(o *VerifierOptions) { o.RequireDate = true }, result: stir.Fail, want: stir.ErrStaleDate},
		// Row 8.
		{name: "orig mismatch", identity: []string{good}, from: "<sip:+12155550199@example.com>", result: stir.Fail, want: stir.ErrOrigMismatch},
		{name: "dest mismatch", identity: []string{good}, to: "<sip:+12155550199@example.com>", result: stir.Fail, want: stir.ErrDestMismatch},
		{name: "From not a number", identity: []string{good}, from: "<sip:alice@example.com>", result: stir.Fail, want: stir.ErrOrigMismatch},
		// Row 9.
		{name: "x5u http", identity: []string{f.signedAt("http://cert.example.org/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u loopback", identity: []string{f.signedAt("https://127.0.0.1/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u metadata", identity: []string{f.signedAt("https://169.254.169.254/latest/meta-data", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u private", identity: []string{f.signedAt("https://10.0.0.1/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u file", identity: []string{f.signedAt("file:///etc/passwd", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u userinfo", identity: []string{f.signedAt("https://user:pw@cert.example.org/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u query", identity: []string{f.signedAt(f.x5u+"?a=b", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u fragment", identity: []string{f.signedAt(f.x5u+"#frag", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u port 80", identity: []string{f.signedAt("https://cert.example.org:80/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "lab host passes allow-list", identity: []string{good}, mod: func(o *VerifierOptions) { o.Fetch.AllowHosts = []string{"cr.example.net"} }, result: stir.Pass},
		{name: "x5u not allow-listed", identity: []string{f.signedAt("https://cert.example.org/sp.pem", key)}, mod: func(o *VerifierOptions) { o.Fetch.AllowHosts = []string{"cr.example.net"} }, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "preload does not bypass policy", identity: []string{f.signedAt("https://127.0.0.2/sp.pem", key)}, mod: func(o *VerifierOptions) {
			o.Fetch.PreloadBytes = nil // a preloaded forbidden URL makes New fail; the URL is refused at Get
		}, result: stir.Fail, want: stir.ErrX5UForbidden},
		// Row 10.
		{name: "x5u 404", identity: []string{f.signedAt(f.srv.URL+"/missing.pem", key)}, result: stir.Fail, want: stir.ErrX5UFetchFailed},
		{name: "x5u redirect", identity: []string{f.signedAt(f.srv.URL+"/redirect", key)}, result: stir.Fail, want: stir.ErrX5UFetchFailed},
		{name: "x5u not PEM", identity: []string{f.signedAt(notPEM, key)}, result: stir.Fail, want: stir.ErrX5UBadContent},
		{name: "offline not preloaded", identity: []string{good}, mod: func(o *VerifierOptions) { o.Fetch.Offline = true }, result: stir.Fail, want: stir.ErrX5UOffline},
		{name: "offline preloaded", identity: []string{good}, mod: func(o *VerifierOptions) {
			o.Fetch.Offline = true
			o.Fetch.PreloadBytes = map[string][]byte{f.x5u: f.lab.ChainPEM()}
		}, result: stir.Pass},
		// Row 11.
		{name: "untrusted chain", identity: []string{f.signedAt(untrustedURL, other.LeafKey)}, result: stir.Fail, want: stir.ErrCertUntrusted},
		{name: "expired leaf", identity: []string{f.signedAt(expiredURL, ec(expKey))}, result: stir.Fail, want: stir.ErrCertExpired},
		{name: "no TNAuthList", identity: []string{f.signedAt(noTNURL, ec(noTNKey))}, result: stir.Fail, want: stir.ErrCertNoTNAuth},
		{name: "CA leaf", identity: []string{f.signedAt(caURL, ec(caKey))}, result: stir.Fail, want: stir.ErrCertProfile},
		{name: "revoked without CRL", identity: []string{f.signedAt(revokedURL, ec(revKey))}, result: stir.Pass},
		{name: "revoked with CRL", identity: []string{f.signedAt(revokedURL, ec(revKey))}, mod: func(o *VerifierOptions) { o.CRL = crlSet }, result: stir.Fail, want: stir.ErrCertRevoked},
		// Row 12.
		{name: "tampered signature", identity: []string{parts[0] + "." + parts[1] + "." + flip(parts[2]) + params}, result: stir.Fail, want: stir.ErrSignatureInvalid},
		{name: "signed by another key", identity: []string{f.signedAt(f.x5u, other.LeafKey)}, result: stir.Fail, want: stir.ErrSignatureInvalid},
		{name: "truncated signature", identity: []string{parts[0] + "." + parts[1] + "." + parts[2][:40] + params}, result: stir.Fail, want: stir.ErrSignatureMalformed},
		{name: "zero signature", identity: []string{parts[0] + "." + parts[1] + "." + b64.EncodeToString(make([]byte, 64)) + params}, result: stir.Fail, want: stir.ErrSignatureMalformed},
		{name: "strict non-canonical", identity: []string{raw(t, key, hdrJSON(f.x5u), claims(`{`, `{ `), f.x5u)}, mod: func(o *VerifierOptions) { o.Strict = true }, result: stir.Fail, want: stir.ErrNonCanonical},
		{name: "strict origid not UUID", identity: []string{raw(t, key, hdrJSON(f.x5u), claims(uuidOK, "ref"), f.x5u)}, mod: func(o *VerifierOptions) { o.Strict = true }, result: stir.Fail, want: stir.ErrOrigIDInvalid},
		// Row 13.
		{name: "most relevant of several", identity: []string{f.signedAt(f.srv.URL+"/missing.pem", key), parts[0] + "." + parts[1] + "." + flip(parts[2]) + params}, result: stir.Fail, want: stir.ErrSignatureInvalid},
		{name: "436 only when nothing better", identity: []string{f.signedAt(f.srv.URL+"/missing.pem", key), f.signedAt(f.srv.URL+"/missing2.pem", key)}, result: stir.Fail, want: stir.ErrX5UFetchFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := f.verifier(tc.mod)
			req := VerifyRequest{Identity: tc.identity, From: tc.from, PAI: tc.pai, To: tc.to, Date: tc.date}
			if req.From == "" {
				req.From = fromHdr
			}
			if req.To == "" {
				req.To = toHdr
			}
			r := v.Verify(context.Background(), req)
			if r.Result != tc.result {
				t.Fatalf("result %s, want %s (%s: %s)", r.Result, tc.result, r.Error, r.Detail)
			}
			if tc.want == nil {
				if r.Result == stir.Pass && (r.Verstat != stir.VerstatPassed || r.Attest != "A" || r.SPC != f.lab.SPC || r.Orig != origTN) {
					t.Fatalf("pass result incomplete: %+v", r)
				}
				return
			}
			if r.Error != tc.want.Name || r.SIPCode != tc.want.SIPCode || r.Reason != tc.want.Reason {
				t.Fatalf("got %s %d %q (%s), want %s %d %q", r.Error, r.SIPCode, r.Reason, r.Detail, tc.want.Name, tc.want.SIPCode, tc.want.Reason)
			}
			if r.Err == nil || !errorsIs(r.Err, tc.want) {
				t.Fatalf("Err %v does not match %s", r.Err, tc.want.Name)
			}
		})
	}
}

func errorsIs(err error, target *stir.Error) bool {
	return stir.As(err) != nil && stir.As(err).Is(target)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func flip(sig string) string {
	b, _ := b64.DecodeString(sig)
	b[10] ^= 0x01
	return b64.EncodeToString(b)
}

func hs256(t *testing.T, header, claims string, secret []byte, info string) string {
	t.Helper()
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(in, secret)
	if err != nil {
		t.Fatal(err)
	}
	// HS256 gives 32 bytes; pad to 64 so that only the algorithm check can
	// be what refuses it.
	sig = append(sig, make([]byte, 32)...)
	return in + "." + b64.EncodeToString(sig) + ";info=<" + info + ">"
}

// A warm verification must not fetch again, and concurrent cold ones fetch
// once (single-flight through the verifier).
func TestVerifyFetchOnce(t *testing.T) {
	f := newFixture(t)
	v := f.verifier(nil)
	good := f.sign(SignRequest{})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := v.Verify(context.Background(), VerifyRequest{Identity: []string{good}, From: fromHdr, To: toHdr})
			if r.Result != stir.Pass {
				t.Errorf("%s %s", r.Error, r.Detail)
			}
		}()
	}
	wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hits["/sp.pem"] != 1 {
		t.Fatalf("%d fetches of one x5u, want 1", f.hits["/sp.pem"])
	}
}

func TestSign(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r, err := f.signer.Sign(ctx, SignRequest{From: fromHdr, To: toHdr, Attest: "B", CallID: "call-1"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := f.signer.Sign(ctx, SignRequest{From: fromHdr, To: toHdr, Attest: "B", CallID: "call-1"})
	if err != nil {
		t.Fatal(err)
	}
	if r.OrigID != r2.OrigID || !validUUID(r.OrigID) {
		t.Fatalf("origid not stable per call: %s %s", r.OrigID, r2.OrigID)
	}
	if r.Date != FormatDate(testNow) || r.IAT != testNow.Unix() {
		t.Fatalf("date %q iat %d", r.Date, r.IAT)
	}
	h, err := identity.Parse(r.Identity)
	if err != nil {
		t.Fatal(err)
	}
	if h.Info != f.x5u || !strings.HasSuffix(r.Identity, ";info=<"+f.x5u+">;alg=ES256;ppt=shaken") {
		t.Fatalf("identity params: %s", r.Identity)
	}
	tok, err := passport.Parse(h.Token)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.Canonical() || tok.Claims.Orig != origTN || tok.Claims.Dest[0] != destTN || tok.Claims.Attest != "B" {
		t.Fatalf("claims %+v", tok.Claims)
	}

	// iat comes from a fresh Date.
	d := FormatDate(testNow.Add(-30 * time.Second))
	r3, err := f.signer.Sign(ctx, SignRequest{Orig: "2155550121", Dest: []string{"+1 215 555 0131"}, Attest: "C", Date: d})
	if err != nil {
		t.Fatal(err)
	}
	if r3.IAT != testNow.Add(-30*time.Second).Unix() || r3.Date != d || r3.Orig != origTN || r3.Dest[0] != destTN {
		t.Fatalf("%+v", r3)
	}

	for name, tc := range map[string]struct {
		req  SignRequest
		want *stir.Error
	}{
		"stale Date":      {SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", Date: FormatDate(testNow.Add(-2 * time.Minute))}, stir.ErrSignDate},
		"bad Date":        {SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", Date: "soon"}, stir.ErrSignDate},
		"letters in orig": {SignRequest{Orig: "ALICE", Dest: []string{destTN}, Attest: "A"}, stir.ErrSignInput},
		"no dest":         {SignRequest{Orig: origTN, Attest: "A"}, stir.ErrSignInput},
		"bad attest":      {SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "D"}, stir.ErrSignInput},
		"no policy":       {SignRequest{Orig: origTN, Dest: []string{destTN}}, stir.ErrSignNotAllowed},
		"before cert":     {SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", At: testNow.Add(-10 * 24 * time.Hour)}, stir.ErrSignCertInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.signer.Sign(ctx, tc.req)
			if e := stir.As(err); e == nil || e.Name != tc.want.Name {
				t.Fatalf("err %v, want %s", err, tc.want.Name)
			}
		})
	}
}

func TestErrorNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range stir.All() {
		if seen[e.Name] {
			t.Fatalf("duplicate error name %s", e.Name)
		}
		seen[e.Name] = true
	}
	if len(seen) < 40 {
		t.Fatalf("only %d names", len(seen))
	}
}

// TestVerifyFailureKeepsWhatWasRead: a failed verification still reports
// the claims the token stated, its x5u, and the SPC once a certificate was
// obtained, so that failures can be grouped by origin and signer.
func TestVerifyFailureKeepsWhatWasRead(t *testing.T) {
	f := newFixture(t)
	good := f.sign(SignRequest{})
	tok := strings.SplitN(good, ";", 2)[0]
	parts := strings.Split(tok, ".")
	badSig := strings.Replace(good, parts[2][:4], "AAAA", 1)
	tests := []struct {
		name     string
		identity string
		from     string
		want     *stir.Error
		spc      string
	}{
		// Fails before the fetch: no certificate, no SPC.
		{"orig mismatch", good, "<sip:+12155550199@example.com>", stir.ErrOrigMismatch, ""},
		// Fails after the fetch: the certificate's SPC is known.
		{"signature", badSig, fromHdr, stir.ErrSignatureInvalid, f.lab.SPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.verifier(nil).Verify(context.Background(), VerifyRequest{Identity: []string{tt.identity}, From: tt.from, To: toHdr})
			if r.Result != stir.Fail || r.Error != tt.want.Name {
				t.Fatalf("%s/%s, want fail/%s", r.Result, r.Error, tt.want.Name)
			}
			if r.Orig != origTN || len(r.Dest) != 1 || r.Dest[0] != destTN || r.X5U != f.x5u || r.IAT != testNow.Unix() ||
				r.OrigID != uuidOK || r.Attest != "A" || r.SPC != tt.spc {
				t.Errorf("read %+v", r)
			}
		})
	}
	// A header that does not parse leaves only its info parameter.
	r := f.verifier(nil).Verify(context.Background(), VerifyRequest{Identity: []string{"e30.e30.AAAA;info=<" + f.x5u + ">;alg=ES256;ppt=shaken"}, From: fromHdr, To: toHdr})
	if r.Result != stir.Fail || r.Orig != "" || r.Attest != "" {
		t.Errorf("unparsed token: %+v", r)
	}
}
