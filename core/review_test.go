package core

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/internal/testlog"
)

// An independent review of the public Verifier and Signer against
// ../shared/conformance/README.md. TestVerifyConformance covers the main
// row of each check; the cases here fill in the inputs of §2 and §4 it
// leaves out, the boundaries of every window, and what §1 says the signer
// emits, byte for byte. Every failing case asserts the exact Name, SIP code
// and reason through the public API.

// reviewCase is one request through Verifier.Verify.
type reviewCase struct {
	name     string
	identity []string
	from     string // default fromHdr
	pai      string
	to       string // default toHdr
	date     string
	mod      func(*VerifierOptions)
	result   stir.Outcome
	want     *stir.Error // nil: no error expected (pass, or none not required)
}

func (f *fixture) runReview(t *testing.T, cases []reviewCase) {
	t.Helper()
	for _, tc := range cases {
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
			checkResult(t, r, tc.result, tc.want)
		})
	}
}

func checkResult(t *testing.T, r *stir.Result, result stir.Outcome, want *stir.Error) {
	t.Helper()
	if r == nil {
		t.Fatal("nil result")
	}
	if r.Result != result {
		t.Fatalf("result %s, want %s (%s %d: %s)", r.Result, result, r.Error, r.SIPCode, r.Detail)
	}
	if want == nil {
		if r.Result == stir.Pass && (r.Verstat != stir.VerstatPassed || r.Err != nil || r.SIPCode != 0) {
			t.Fatalf("pass result carries a failure: %+v", r)
		}
		return
	}
	if r.Error != want.Name || r.SIPCode != want.SIPCode || r.Reason != want.Reason || r.Verstat != want.Verstat {
		t.Fatalf("got %s %d %q %s (%s), want %s %d %q %s", r.Error, r.SIPCode, r.Reason, r.Verstat, r.Detail,
			want.Name, want.SIPCode, want.Reason, want.Verstat)
	}
	if r.Result != stir.None || r.Err != nil {
		if r.Err == nil || !errorsIs(r.Err, want) {
			t.Fatalf("Err %v does not match %s", r.Err, want.Name)
		}
	}
}

// tokenParts signs claims with the fixture's key and returns the three
// segments of a well-formed token, for cases that then break one of them.
func (f *fixture) tokenParts(claims string) (h, p, s string) {
	v := raw(f.t, f.lab.LeafKey, hdrJSON(f.x5u), claims, f.x5u)
	parts := strings.Split(strings.SplitN(v, ";", 2)[0], ".")
	return parts[0], parts[1], parts[2]
}

// signedClaims is a token over claims, signed with the fixture's key.
func (f *fixture) signedClaims(claims string) string {
	return raw(f.t, f.lab.LeafKey, hdrJSON(f.x5u), claims, f.x5u)
}

// withSig replaces the signature of a fresh token with sig.
func (f *fixture) withSig(sig []byte) string {
	h, p, _ := f.tokenParts(claimsJSON(testNow.Unix()))
	return h + "." + p + "." + b64.EncodeToString(sig) + ";info=<" + f.x5u + ">;alg=ES256;ppt=shaken"
}

// hs256Raw is an HS256 token keyed with the certificate as an attacker
// would send it: a 32-byte MAC, not padded to look like ES256.
func hs256Raw(t *testing.T, header, claims string, secret []byte, info string) string {
	t.Helper()
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(in, secret)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig) + ";info=<" + info + ">;alg=ES256;ppt=shaken"
}

// staticResolver answers every name with one address, so that the
// "after DNS resolution" rule of row 9 can be tested without DNS.
type staticResolver struct{ ip net.IP }

func (r staticResolver) LookupIPAddr(context.Context, string) ([]net.IPAddr, error) {
	return []net.IPAddr{{IP: r.ip}}, nil
}

// hostileServer serves slow and endless x5u bodies over TLS; it shares
// httptest's certificate with the fixture, so only its host is added.
func hostileServer(t *testing.T) (*httptest.Server, func(*VerifierOptions)) {
	t.Helper()
	stop := make(chan struct{})
	srv := testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/endless":
			chunk := []byte(strings.Repeat("A", 4096))
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/slow":
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("-----BEGIN CERTIFICATE-----\n"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			}
		case "/empty":
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	host := strings.TrimPrefix(srv.URL, "https://")
	return srv, func(o *VerifierOptions) {
		o.Fetch.LabHosts = append(o.Fetch.LabHosts, host)
		o.Fetch.Timeout = 300 * time.Millisecond
	}
}

func TestReviewVerifyRows(t *testing.T) {
	f := newFixture(t)
	key := f.lab.LeafKey
	good := f.sign(SignRequest{})
	tok := strings.SplitN(good, ";", 2)[0]
	parts := strings.Split(tok, ".")
	info := ";info=<" + f.x5u + ">"
	params := info + ";alg=ES256;ppt=shaken"
	now := testNow.Unix()
	hdr := func(old, new string) string { return strings.Replace(hdrJSON(f.x5u), old, new, 1) }
	claims := func(old, new string) string { return strings.Replace(claimsJSON(now), old, new, 1) }
	signed := func(h, c string) []string { return []string{raw(t, key, h, c, f.x5u)} }

	// Signatures for row 12.
	_, _, goodSig := f.tokenParts(claimsJSON(now))
	sig, _ := b64.DecodeString(goodSig)
	rZero := append(make([]byte, 32), sig[32:]...)
	sZero := append(append([]byte(nil), sig[:32]...), make([]byte, 32)...)
	sOrder := append(append([]byte(nil), sig[:32]...), elliptic.P256().Params().N.FillBytes(make([]byte, 32))...)
	h0, p0, _ := f.tokenParts(claimsJSON(now))
	digest := sha256.Sum256([]byte(h0 + "." + p0))
	der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	derToken := h0 + "." + p0 + "." + b64.EncodeToString(der) + params

	// A token naming several destinations, for row 8.
	multiDest := raw(t, key, hdrJSON(f.x5u), string(passport.MarshalClaims(passport.Claims{
		Attest: "A", Dest: []string{"12155550199", destTN, "442079460000"}, IAT: now, Orig: origTN, OrigID: uuidOK,
	})), f.x5u)

	// Credentials for row 11.
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384Leaf, _, err := f.lab.IssueLeaf(certs.LeafOptions{Key: p384})
	if err != nil {
		t.Fatal(err)
	}
	p384URL := f.url("/p384.pem", certs.EncodePEM(p384Leaf, f.lab.CA))
	futLeaf, futKey, err := f.lab.IssueLeaf(certs.LeafOptions{NotBefore: testNow.Add(time.Hour), NotAfter: testNow.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	futURL := f.url("/future.pem", certs.EncodePEM(futLeaf, f.lab.CA))
	reversedURL := f.url("/reversed.pem", certs.EncodePEM(f.lab.CA, f.lab.Leaf))
	leafOnlyURL := f.url("/leaf-only.pem", certs.EncodePEM(f.lab.Leaf))
	ec := func(k any) *ecdsa.PrivateKey { return k.(*ecdsa.PrivateKey) }

	hostile, hostileOpts := hostileServer(t)

	cases := []reviewCase{
		// Row 2: limits come before any decoding, and count values, not lines.
		{name: "five headers is the limit", identity: []string{good, good, good, good, good}, result: stir.Pass},
		{name: "six headers is the limit (SHAKEN + 5 div)", identity: []string{good, good, good, good, good, good}, result: stir.Pass},
		{name: "seven values in one header", identity: []string{strings.Repeat(good+",", 6) + good}, result: stir.Fail, want: stir.ErrTooManyIdentity},
		{name: "two values in one header", identity: []string{good + "," + good}, result: stir.Pass},
		{name: "total bytes over the cap", identity: []string{good, good, strings.Repeat("A", 8192-2*len(good)) + params}, result: stir.Fail, want: stir.ErrIdentityTooLong},
		{name: "none when not required", identity: nil, result: stir.None},
		{name: "empty value", identity: []string{""}, result: stir.Fail, want: stir.ErrHeaderMalformed},

		// Row 3.
		{name: "slash in segment", identity: []string{strings.Replace(tok, "e", "/", 1) + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "padding on signature", identity: []string{tok + "=" + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "space inside token", identity: []string{parts[0] + " ." + parts[1] + "." + parts[2] + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "empty header segment", identity: []string{"." + parts[1] + "." + parts[2] + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "empty signature segment", identity: []string{parts[0] + "." + parts[1] + "." + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "info empty", identity: []string{tok + ";info=<>;alg=ES256;ppt=shaken"}, result: stir.Fail, want: stir.ErrInfoMalformed},
		{name: "info relative", identity: []string{tok + ";info=</sp.pem>;alg=ES256;ppt=shaken"}, result: stir.Fail, want: stir.ErrInfoMalformed},
		{name: "info quoted", identity: []string{tok + `;info="` + f.x5u + `";alg=ES256;ppt=shaken`}, result: stir.Fail, want: stir.ErrInfoMalformed},
		{name: "info twice", identity: []string{tok + params + info}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "folded header", identity: []string{tok + "\r\n ;info=<" + f.x5u + ">\r\n\t;alg=ES256 ;ppt=shaken\r\n"}, result: stir.Pass},
		{name: "param names case-insensitive", identity: []string{tok + ";INFO=<" + f.x5u + ">;Alg=ES256;PPT=shaken"}, result: stir.Pass},
		{name: "alg param lower case", identity: []string{tok + info + ";alg=es256;ppt=shaken"}, result: stir.Fail, want: stir.ErrAlgUnsupported},

		// Row 4.
		// A div PASSporT alone cannot complete a chain (§6 D2); one that
		// does not decode takes no part in it.
		{name: "quoted ppt div alone", identity: []string{tok + info + `;ppt="div"`}, result: stir.Fail, want: stir.ErrDivNoShaken},
		// ppt values compare exactly: an upper-case SHAKEN is not ours.
		{name: "ppt upper case is not ours", identity: []string{tok + info + ";ppt=SHAKEN"}, result: stir.None},
		{name: "div header then good", identity: []string{tok + info + ";ppt=div", good}, result: stir.Pass},
		{name: "JOSE ppt div under ppt=shaken", identity: signed(hdr(`"ppt":"shaken"`, `"ppt":"div"`), claimsJSON(now)), result: stir.Fail, want: stir.ErrPptInvalid},
		{name: "JOSE ppt missing", identity: signed(hdr(`"ppt":"shaken",`, ``), claimsJSON(now)), result: stir.Fail, want: stir.ErrPptInvalid},

		// Row 5 and §4: the algorithm is never taken from the token.
		{name: "alg none with empty signature", identity: []string{b64.EncodeToString([]byte(hdr(`"ES256"`, `"none"`))) + "." + parts[1] + "." + params}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "alg RS256", identity: signed(hdr(`"ES256"`, `"RS256"`), claimsJSON(now)), result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "alg lower case", identity: signed(hdr(`"ES256"`, `"es256"`), claimsJSON(now)), result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "alg missing", identity: signed(hdr(`"alg":"ES256",`, ``), claimsJSON(now)), result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "alg not a string", identity: signed(hdr(`"ES256"`, `["ES256"]`), claimsJSON(now)), result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "typ missing", identity: signed(hdr(`"typ":"passport",`, ``), claimsJSON(now)), result: stir.Fail, want: stir.ErrTypInvalid},
		{name: "x5u missing", identity: signed(hdr(`,"x5u":"`+f.x5u+`"`, ``), claimsJSON(now)), result: stir.Fail, want: stir.ErrX5UMismatch},
		{name: "x5u not a string", identity: signed(hdr(`"`+f.x5u+`"`, `1`), claimsJSON(now)), result: stir.Fail, want: stir.ErrX5UMismatch},
		{name: "x5u with escaped slashes equals info", identity: signed(hdr(`"`+f.x5u+`"`, `"`+strings.ReplaceAll(f.x5u, "/", `\/`)+`"`), claimsJSON(now)), result: stir.Pass},
		{name: "x5u differs in case", identity: signed(hdr(`"`+f.x5u+`"`, `"`+strings.ToUpper(f.x5u)+`"`), claimsJSON(now)), result: stir.Fail, want: stir.ErrX5UMismatch},
		{name: "x5c jku kid ignored", identity: signed(hdr(`}`, `,"x5c":["AAAA"],"jku":"https://evil.example/k","kid":"k1"}`), claimsJSON(now)), result: stir.Pass},
		{name: "crit empty", identity: signed(hdr(`}`, `,"crit":[]}`), claimsJSON(now)), result: stir.Fail, want: stir.ErrCritUnsupported},
		{name: "JOSE duplicate member", identity: signed(hdr(`{`, `{"alg":"ES256",`), claimsJSON(now)), result: stir.Fail, want: stir.ErrJSONMalformed},
		{name: "JOSE case-variant member", identity: signed(hdr(`{`, `{"ALG":"none",`), claimsJSON(now)), result: stir.Fail, want: stir.ErrJSONMalformed},
		{name: "JOSE not an object", identity: signed(`["ES256"]`, claimsJSON(now)), result: stir.Fail, want: stir.ErrJSONMalformed},
		{name: "JOSE trailing garbage", identity: signed(hdrJSON(f.x5u)+"x", claimsJSON(now)), result: stir.Fail, want: stir.ErrJSONMalformed},
		{name: "JOSE invalid UTF-8", identity: signed(hdr(`"passport"`, "\"pass\xffport\""), claimsJSON(now)), result: stir.Fail, want: stir.ErrJSONMalformed},

		// Row 6 and §4.
		{name: "iat float", identity: signed(hdrJSON(f.x5u), claims(`"iat":`+itoa(now), `"iat":`+itoa(now)+`.0`)), result: stir.Fail, want: stir.ErrIATInvalid},
		{name: "iat exponent", identity: signed(hdrJSON(f.x5u), claims(`"iat":`+itoa(now), `"iat":1.7e9`)), result: stir.Fail, want: stir.ErrIATInvalid},
		{name: "iat negative", identity: signed(hdrJSON(f.x5u), claims(`"iat":`+itoa(now), `"iat":-`+itoa(now))), result: stir.Fail, want: stir.ErrIATInvalid},
		{name: "iat zero", identity: signed(hdrJSON(f.x5u), claims(`"iat":`+itoa(now), `"iat":0`)), result: stir.Fail, want: stir.ErrIATInvalid},
		{name: "iat missing", identity: signed(hdrJSON(f.x5u), claims(`"iat":`+itoa(now)+`,`, ``)), result: stir.Fail, want: stir.ErrIATInvalid},
		{name: "iat null", identity: signed(hdrJSON(f.x5u), claims(`"iat":`+itoa(now), `"iat":null`)), result: stir.Fail, want: stir.ErrIATInvalid},
		{name: "iat beyond int64", identity: signed(hdrJSON(f.x5u), claims(`"iat":`+itoa(now), `"iat":99999999999999999999`)), result: stir.Fail, want: stir.ErrIATInvalid},
		{name: "two orig members", identity: signed(hdrJSON(f.x5u), claims(`"orig":`, `"orig":{"tn":"12155550199"},"orig":`)), result: stir.Fail, want: stir.ErrJSONMalformed},
		{name: "orig with tn twice", identity: signed(hdrJSON(f.x5u), claims(`"orig":{"tn":"`+origTN+`"}`, `"orig":{"tn":"12155550199","tn":"`+origTN+`"}`)), result: stir.Fail, want: stir.ErrJSONMalformed},
		{name: "orig tn and uri", identity: signed(hdrJSON(f.x5u), claims(`"orig":{"tn":"`+origTN+`"}`, `"orig":{"tn":"`+origTN+`","uri":"sip:a@b"}`)), result: stir.Fail, want: stir.ErrOrigInvalid},
		{name: "orig tn empty", identity: signed(hdrJSON(f.x5u), claims(`"`+origTN+`"`, `""`)), result: stir.Fail, want: stir.ErrOrigInvalid},
		{name: "orig tn 16 digits", identity: signed(hdrJSON(f.x5u), claims(`"`+origTN+`"`, `"1215555012100000"`)), result: stir.Fail, want: stir.ErrOrigInvalid},
		{name: "orig tn as number", identity: signed(hdrJSON(f.x5u), claims(`"`+origTN+`"`, origTN)), result: stir.Fail, want: stir.ErrOrigInvalid},
		{name: "orig tn with separators", identity: signed(hdrJSON(f.x5u), claims(`"`+origTN+`"`, `"1-215-555-0121"`)), result: stir.Fail, want: stir.ErrOrigInvalid},
		{name: "orig missing", identity: signed(hdrJSON(f.x5u), claims(`,"orig":{"tn":"`+origTN+`"}`, ``)), result: stir.Fail, want: stir.ErrOrigInvalid},
		{name: "dest tn empty array", identity: signed(hdrJSON(f.x5u), claims(`["`+destTN+`"]`, `[]`)), result: stir.Fail, want: stir.ErrDestInvalid},
		{name: "dest tn holds a number", identity: signed(hdrJSON(f.x5u), claims(`["`+destTN+`"]`, `[`+destTN+`]`)), result: stir.Fail, want: stir.ErrDestInvalid},
		{name: "plus in dest", identity: signed(hdrJSON(f.x5u), claims(`["`+destTN+`"]`, `["+`+destTN+`"]`)), result: stir.Fail, want: stir.ErrDestInvalid},
		{name: "dest uri only", identity: signed(hdrJSON(f.x5u), claims(`{"tn":["`+destTN+`"]}`, `{"uri":["sip:b@c"]}`)), result: stir.Fail, want: stir.ErrDestInvalid},
		{name: "dest missing", identity: signed(hdrJSON(f.x5u), claims(`"dest":{"tn":["`+destTN+`"]},`, ``)), result: stir.Fail, want: stir.ErrDestInvalid},
		{name: "attest lower case", identity: signed(hdrJSON(f.x5u), claims(`"attest":"A"`, `"attest":"a"`)), result: stir.Fail, want: stir.ErrAttestInvalid},
		{name: "attest D", identity: signed(hdrJSON(f.x5u), claims(`"attest":"A"`, `"attest":"D"`)), result: stir.Fail, want: stir.ErrAttestInvalid},
		{name: "attest missing", identity: signed(hdrJSON(f.x5u), claims(`"attest":"A",`, ``)), result: stir.Fail, want: stir.ErrAttestInvalid},
		{name: "attest case-variant duplicate", identity: signed(hdrJSON(f.x5u), claims(`"attest":"A"`, `"attest":"C","Attest":"A"`)), result: stir.Fail, want: stir.ErrJSONMalformed},
		{name: "origid empty", identity: signed(hdrJSON(f.x5u), claims(`"`+uuidOK+`"`, `""`)), result: stir.Fail, want: stir.ErrOrigIDInvalid},
		{name: "origid missing", identity: signed(hdrJSON(f.x5u), claims(`,"origid":"`+uuidOK+`"`, ``)), result: stir.Fail, want: stir.ErrOrigIDInvalid},
		{name: "origid not a UUID relaxed", identity: signed(hdrJSON(f.x5u), claims(uuidOK, "ref-1")), result: stir.Pass},
		{name: "unknown claim ignored", identity: signed(hdrJSON(f.x5u), claims(`}`, `,"rcd":{"nam":"x"}}`)), result: stir.Pass},
		{name: "claims not an object", identity: signed(hdrJSON(f.x5u), `[]`), result: stir.Fail, want: stir.ErrJSONMalformed},
		{name: "claims nested too deep", identity: signed(hdrJSON(f.x5u), claims(`}`, `,"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`}`)), result: stir.Fail, want: stir.ErrJSONMalformed},

		// Row 7: both edges of every window, and hostile times.
		{name: "iat 60s ahead", identity: signed(hdrJSON(f.x5u), claimsJSON(now+60)), result: stir.Pass},
		{name: "iat 1", identity: signed(hdrJSON(f.x5u), claimsJSON(1)), result: stir.Fail, want: stir.ErrStaleIAT},
		{name: "Date 60s old", identity: []string{good}, date: FormatDate(testNow.Add(-60 * time.Second)), result: stir.Pass},
		{name: "Date 61s old", identity: []string{good}, date: FormatDate(testNow.Add(-61 * time.Second)), result: stir.Fail, want: stir.ErrStaleDate},
		{name: "Date 60s ahead", identity: []string{good}, date: FormatDate(testNow.Add(60 * time.Second)), result: stir.Pass},
		{name: "Date 61s ahead", identity: []string{good}, date: FormatDate(testNow.Add(61 * time.Second)), result: stir.Fail, want: stir.ErrStaleDate},
		{name: "Date year 0001", identity: []string{good}, date: "Mon, 01 Jan 0001 00:00:00 GMT", result: stir.Fail, want: stir.ErrStaleDate},
		{name: "custom windows", identity: signed(hdrJSON(f.x5u), claimsJSON(now-100)), date: FormatDate(testNow.Add(-100 * time.Second)),
			mod: func(o *VerifierOptions) { o.MaxAge = 2 * time.Minute }, result: stir.Pass},
		{name: "custom future window", identity: signed(hdrJSON(f.x5u), claimsJSON(now+10)),
			mod: func(o *VerifierOptions) { o.MaxFuture = 5 * time.Second }, result: stir.Fail, want: stir.ErrFutureIAT},
		{name: "Date window apart from iat window", identity: []string{good}, date: FormatDate(testNow.Add(-30 * time.Second)),
			mod: func(o *VerifierOptions) { o.DateMaxAge = 20 * time.Second }, result: stir.Fail, want: stir.ErrStaleDate},
		{name: "row 7 before row 8", identity: signed(hdrJSON(f.x5u), claimsJSON(now-120)), from: "<sip:+12155550199@x>", result: stir.Fail, want: stir.ErrStaleIAT},

		// Row 8.
		{name: "To is one of several dest", identity: []string{multiDest}, result: stir.Pass},
		{name: "To national, dest E.164", identity: []string{multiDest}, to: "<sip:2155550131@example.net>", result: stir.Pass},
		{name: "To foreign in dest", identity: []string{multiDest}, to: "<tel:+44-20-7946-0000>", result: stir.Pass},
		{name: "To not in several dest", identity: []string{multiDest}, to: "<sip:+12155550100@example.net>", result: stir.Fail, want: stir.ErrDestMismatch},
		{name: "To not a number", identity: []string{good}, to: "<sip:bob@example.net>", result: stir.Fail, want: stir.ErrDestMismatch},
		{name: "To with tag and params", identity: []string{good}, to: `"Bob" <sip:+1-215-555-0131;npdi;rn=+12155550000@example.net;user=phone>;tag=x`, result: stir.Pass},
		{name: "From empty", identity: []string{good}, from: " ", result: stir.Fail, want: stir.ErrOrigMismatch},
		{name: "PAI over matching From", identity: []string{good}, pai: "<sip:+12155550199@example.com>", result: stir.Fail, want: stir.ErrOrigMismatch},
		{name: "PAI not a number, From matches", identity: []string{good}, pai: "<sip:alice@example.com>", result: stir.Fail, want: stir.ErrOrigMismatch},
		// RFC 3325 lets P-Asserted-Identity carry one sip and one tel URI;
		// the first URI of the value is the one compared.
		{name: "PAI sip then tel, sip matches", identity: []string{good}, pai: "<sip:+12155550121@example.com;user=phone>, <tel:+12155550199>", result: stir.Pass},
		{name: "PAI tel then sip, tel matches", identity: []string{good}, pai: "tel:+1-215-555-0121, <sip:+12155550199@example.com>", result: stir.Pass},
		{name: "PAI sip then tel, tel matches", identity: []string{good}, pai: "<sip:+12155550199@example.com>, <tel:+12155550121>", result: stir.Fail, want: stir.ErrOrigMismatch},
		{name: "PAI with inbound verstat", identity: []string{good}, pai: "<tel:+12155550121;verstat=TN-Validation-Passed>", result: stir.Pass},
		// To names one URI; a list (which RFC 3261 does not allow in To) is
		// read as its first element.
		{name: "To list, first in dest", identity: []string{good}, to: "<sip:+12155550131@example.net>, <sip:+12155550199@example.net>", result: stir.Pass},
		{name: "To list, second in dest", identity: []string{good}, to: "<sip:+12155550199@example.net>, <sip:+12155550131@example.net>", result: stir.Fail, want: stir.ErrDestMismatch},
		// A local tel number's phone-context is not applied (see REVIEW.md).
		{name: "To local tel with phone-context", identity: []string{good}, to: "<tel:5550131;phone-context=+1215>", result: stir.Fail, want: stir.ErrDestMismatch},
		{name: "row 8 before row 9", identity: []string{f.signedAt("http://cert.example.org/sp.pem", key)}, from: "<sip:+12155550199@x>", result: stir.Fail, want: stir.ErrOrigMismatch},

		// Row 9.
		{name: "x5u IPv6 loopback", identity: []string{f.signedAt("https://[::1]/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u v4-mapped loopback", identity: []string{f.signedAt("https://[::ffff:127.0.0.1]/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u localhost", identity: []string{f.signedAt("https://localhost/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u hex IPv4", identity: []string{f.signedAt("https://0x7f.1/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u ftp", identity: []string{f.signedAt("ftp://cert.example.org/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u data", identity: []string{f.signedAt("data:text/plain,hello", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u port 0443", identity: []string{f.signedAt("https://cert.example.org:0443/sp.pem", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u empty query", identity: []string{f.signedAt("https://cert.example.org/sp.pem?", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u empty fragment", identity: []string{f.signedAt("https://cert.example.org/sp.pem#", key)}, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u name resolving to loopback", identity: []string{f.signedAt("https://cert.example.org/sp.pem", key)},
			mod: func(o *VerifierOptions) { o.Fetch.Resolver = staticResolver{net.ParseIP("127.0.0.1")} }, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u name resolving to metadata", identity: []string{f.signedAt("https://cert.example.org/sp.pem", key)},
			mod: func(o *VerifierOptions) { o.Fetch.Resolver = staticResolver{net.ParseIP("169.254.169.254")} }, result: stir.Fail, want: stir.ErrX5UForbidden},
		{name: "x5u forbidden even offline", identity: []string{f.signedAt("https://10.1.2.3/sp.pem", key)},
			mod: func(o *VerifierOptions) { o.Fetch.Offline = true }, result: stir.Fail, want: stir.ErrX5UForbidden},

		// Row 10.
		{name: "x5u 500", identity: []string{f.signedAt(hostile.URL+"/500", key)}, mod: hostileOpts, result: stir.Fail, want: stir.ErrX5UFetchFailed},
		{name: "x5u empty body", identity: []string{f.signedAt(hostile.URL+"/empty", key)}, mod: hostileOpts, result: stir.Fail, want: stir.ErrX5UBadContent},
		{name: "x5u endless body", identity: []string{f.signedAt(hostile.URL+"/endless", key)}, mod: hostileOpts, result: stir.Fail, want: stir.ErrX5UBadContent},
		{name: "x5u slow body", identity: []string{f.signedAt(hostile.URL+"/slow", key)}, mod: hostileOpts, result: stir.Fail, want: stir.ErrX5UFetchFailed},

		// Row 11.
		{name: "P-384 leaf", identity: []string{f.signedAt(p384URL, key)}, result: stir.Fail, want: stir.ErrCertProfile},
		{name: "leaf not yet valid", identity: []string{f.signedAt(futURL, ec(futKey))}, result: stir.Fail, want: stir.ErrCertExpired},
		{name: "intermediate missing", identity: []string{f.signedAt(leafOnlyURL, key)}, result: stir.Fail, want: stir.ErrCertUntrusted},
		{name: "chain not leaf first", identity: []string{f.signedAt(reversedURL, key)}, result: stir.Fail, want: stir.ErrCertProfile},

		// Row 12 and §4.
		{name: "DER signature", identity: []string{derToken}, result: stir.Fail, want: stir.ErrSignatureMalformed},
		{name: "r zero", identity: []string{f.withSig(rZero)}, result: stir.Fail, want: stir.ErrSignatureMalformed},
		{name: "s zero", identity: []string{f.withSig(sZero)}, result: stir.Fail, want: stir.ErrSignatureMalformed},
		{name: "s equals n", identity: []string{f.withSig(sOrder)}, result: stir.Fail, want: stir.ErrSignatureMalformed},
		{name: "65-byte signature", identity: []string{f.withSig(append(append([]byte(nil), sig...), 0))}, result: stir.Fail, want: stir.ErrSignatureMalformed},
		{name: "claims re-encoded keep signature", identity: []string{parts[0] + "." + b64.EncodeToString([]byte(claims(`{`, `{ `))) + "." + parts[2] + params}, result: stir.Fail, want: stir.ErrSignatureInvalid},

		// Row 13.
		// Rank goes by the table's row: the header that got further along the
		// pipeline is reported, and 436 only when nothing better is known.
		{name: "row-12 signature over row-11 credential", identity: []string{f.signedAt(p384URL, key), parts[0] + "." + parts[1] + "." + flip(parts[2]) + params}, result: stir.Fail, want: stir.ErrSignatureInvalid},
		{name: "parse failure and fetch failure", identity: []string{tok + ".AAAA" + params, f.signedAt(f.srv.URL+"/missing.pem", key)}, result: stir.Fail, want: stir.ErrHeaderMalformed},
		{name: "row-12 signature over row-7 stale iat", identity: []string{f.signedClaims(claimsJSON(now - 120)), parts[0] + "." + parts[1] + "." + flip(parts[2]) + params}, result: stir.Fail, want: stir.ErrSignatureInvalid},
		{name: "row-11 credential over row-7 stale iat", identity: []string{f.signedClaims(claimsJSON(now - 120)), f.signedAt(p384URL, key)}, result: stir.Fail, want: stir.ErrCertProfile},
		{name: "good after two bad", identity: []string{tok + ".AAAA" + params, f.signedAt(f.srv.URL+"/missing.pem", key), good}, result: stir.Pass},
	}
	f.runReview(t, cases)

	t.Run("request-level require", func(t *testing.T) {
		r := f.verifier(nil).Verify(context.Background(), VerifyRequest{From: fromHdr, To: toHdr, RequireIdentity: true})
		checkResult(t, r, stir.None, stir.ErrNoIdentity)
		if r.SIPCode != 428 || r.Verstat != stir.VerstatNone {
			t.Fatalf("%+v", r)
		}
	})

	// Row 11 profile rules through the Verifier, with zlint's SHAKEN
	// fixtures (certs/testdata/zlint). The profile is judged before the
	// path, so these untrusted, long-expired leaves fail on their profile.
	t.Run("row 11 profile fixtures", func(t *testing.T) {
		for _, tc := range []struct {
			file string
			want *stir.Error
		}{
			{"shakenCert.pem", stir.ErrCertExpired}, // conformant profile: the path check reports its age
			{"shakenCertPolicyNo.pem", stir.ErrCertProfile},
			{"shakenCertPolicyIncorrect.pem", stir.ErrCertProfile},
			{"shakenKeyUsageOdd.pem", stir.ErrCertProfile},
			{"shakenKeyUsageNotCritical.pem", stir.ErrCertProfile},
			{"shakenBasicConstNo.pem", stir.ErrCertProfile},
			{"shakenKeyAlgRSA.pem", stir.ErrCertProfile},
			{"shakenSubject.pem", stir.ErrCertProfile},
		} {
			t.Run(tc.file, func(t *testing.T) {
				pem, err := os.ReadFile(filepath.Join("certs", "testdata", "zlint", tc.file))
				if err != nil {
					t.Fatal(err)
				}
				// The fixtures carry openssl's text dump before the PEM block,
				// which an x5u body may not (x5u_bad_content).
				pem = pem[bytes.Index(pem, []byte("-----BEGIN")):]
				u := f.url("/zlint/"+tc.file, pem)
				r := f.verifier(nil).Verify(context.Background(), VerifyRequest{Identity: []string{f.signedAt(u, key)}, From: fromHdr, To: toHdr})
				checkResult(t, r, stir.Fail, tc.want)
			})
		}
	})

	// A cold cache and a caller that has already given up: a fetch
	// failure (436), never a pass and never a hang.
	t.Run("cancelled context, cold cache", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := f.verifier(nil).Verify(ctx, VerifyRequest{Identity: []string{f.signedAt(f.url("/cold.pem", f.lab.ChainPEM()), key)}, From: fromHdr, To: toHdr})
		checkResult(t, r, stir.Fail, stir.ErrX5UFetchFailed)
	})

	// Row 14: a pass reports every field the surfaces print.
	t.Run("pass fields", func(t *testing.T) {
		r := f.verifier(nil).Verify(context.Background(), VerifyRequest{Identity: []string{multiDest}, From: fromHdr, To: toHdr})
		checkResult(t, r, stir.Pass, nil)
		if r.Attest != "A" || r.OrigID != uuidOK || r.Orig != origTN || r.X5U != f.x5u || r.SPC != f.lab.SPC || r.IAT != now ||
			strings.Join(r.Dest, ",") != destTN+",12155550199,442079460000" {
			t.Fatalf("%+v", r)
		}
	})

	// Row 9: a forbidden URL is refused before any fetch or cache use.
	t.Run("no fetch before row 9", func(t *testing.T) {
		// Paths no other case uses: fetches that earlier cases left running
		// in the background must not be mistaken for these.
		paths := []string{"/forbidden-query.pem", "/forbidden-fragment.pem", "/forbidden-http.pem"}
		urls := []string{f.srv.URL + paths[0] + "?x=1", f.srv.URL + paths[1] + "#x", strings.Replace(f.srv.URL, "https", "http", 1) + paths[2]}
		for _, u := range urls {
			r := f.verifier(nil).Verify(context.Background(), VerifyRequest{Identity: []string{f.signedAt(u, key)}, From: fromHdr, To: toHdr})
			checkResult(t, r, stir.Fail, stir.ErrX5UForbidden)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range paths {
			if f.hits[p] != 0 {
				t.Fatalf("forbidden URL %s reached the server", p)
			}
		}
	})
}

// TestReviewSign checks §1: what the signer emits, byte for byte.
func TestReviewSign(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cred := f.signer.Credential()

	t.Run("exact bytes", func(t *testing.T) {
		// An x5u with '/' and '&': neither may be escaped in the JSON, and
		// info must be the same bytes.
		u := f.x5u + "/a&b"
		s, err := NewSigner(SignerOptions{Credential: cred, X5U: u, Numbers: tn.NANP(), Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Sign(ctx, SignRequest{Orig: "+1 (215) 555-0121", Dest: []string{"2155550199", "+1-215-555-0131", "12155550199", "12155550131"}, Attest: "B", OrigID: uuidOK})
		if err != nil {
			t.Fatal(err)
		}
		tokEnd := strings.IndexByte(r.Identity, ';')
		if tokEnd < 0 || r.Identity[tokEnd:] != ";info=<"+u+">;alg=ES256;ppt=shaken" {
			t.Fatalf("params: %s", r.Identity)
		}
		segs := strings.Split(r.Identity[:tokEnd], ".")
		if len(segs) != 3 {
			t.Fatalf("%d segments", len(segs))
		}
		for i, s := range segs {
			if s == "" || strings.ContainsAny(s, "=+/ \r\n") {
				t.Fatalf("segment %d not unpadded base64url: %q", i, s)
			}
		}
		h, _ := b64.DecodeString(segs[0])
		if want := `{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"` + u + `"}`; string(h) != want {
			t.Fatalf("header\n got %s\nwant %s", h, want)
		}
		p, _ := b64.DecodeString(segs[1])
		want := `{"attest":"B","dest":{"tn":["12155550131","12155550199"]},"iat":` + itoa(testNow.Unix()) +
			`,"orig":{"tn":"12155550121"},"origid":"` + uuidOK + `"}`
		if string(p) != want {
			t.Fatalf("claims\n got %s\nwant %s", p, want)
		}
		sig, _ := b64.DecodeString(segs[2])
		if len(sig) != 64 {
			t.Fatalf("signature %d bytes, want raw 64", len(sig))
		}
		d := sha256.Sum256([]byte(segs[0] + "." + segs[1]))
		rr, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		if !ecdsa.Verify(&cred.Key.PublicKey, d[:], rr, ss) {
			t.Fatal("signature does not verify over h.p with the leaf key")
		}
		if r.Orig != origTN || strings.Join(r.Dest, ",") != "12155550131,12155550199" || r.X5U != u || r.IAT != testNow.Unix() {
			t.Fatalf("%+v", r)
		}
		// Claims are also valid JSON to a stock decoder, with an integer iat.
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(string(p)))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if _, err := m["iat"].(json.Number).Int64(); err != nil {
			t.Fatalf("iat %v is not an integer", m["iat"])
		}
	})

	t.Run("orig from PAI, else From; dest from To", func(t *testing.T) {
		for _, tc := range []struct {
			from, pai, to, orig, dest string
		}{
			{fromHdr, "", toHdr, origTN, destTN},
			{"<sip:+19995550000@x>", "<tel:+1-215-555-0121>", "<sip:2155550131@y>", origTN, destTN},
			{"<sip:+19995550000@x>", "<sip:+12155550121@a>, <tel:+12155550199>", "tel:+12155550131;tag=1", origTN, destTN},
		} {
			r, err := f.signer.Sign(ctx, SignRequest{From: tc.from, PAI: tc.pai, To: tc.to, Attest: "A"})
			if err != nil {
				t.Fatal(err)
			}
			if r.Orig != tc.orig || len(r.Dest) != 1 || r.Dest[0] != tc.dest {
				t.Fatalf("%+v from %q %q %q", r, tc.from, tc.pai, tc.to)
			}
		}
	})

	t.Run("round trip", func(t *testing.T) {
		v := f.verifier(nil)
		r, err := f.signer.Sign(ctx, SignRequest{Orig: origTN, Dest: []string{"12155550199", destTN}, Attest: "C", CallID: "rt-1"})
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range []string{toHdr, "<tel:+12155550199>"} {
			res := v.Verify(ctx, VerifyRequest{Identity: []string{r.Identity}, From: fromHdr, To: to, Date: r.Date})
			checkResult(t, res, stir.Pass, nil)
			if res.Attest != "C" || res.OrigID != r.OrigID {
				t.Fatalf("%+v", res)
			}
		}
		v2 := f.verifier(func(o *VerifierOptions) { o.Strict = true })
		checkResult(t, v2.Verify(ctx, VerifyRequest{Identity: []string{r.Identity}, From: fromHdr, To: toHdr, Date: r.Date}), stir.Pass, nil)
	})

	t.Run("Date", func(t *testing.T) {
		// No Date: iat is now and a Date header to add comes back.
		r, err := f.signer.Sign(ctx, SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}, At: testNow.Add(1500 * time.Millisecond)})
		if err != nil {
			t.Fatal(err)
		}
		d, err := http.ParseTime(r.Date)
		if err != nil || d.Unix() != r.IAT || r.IAT != testNow.Unix()+1 {
			t.Fatalf("date %q iat %d: %v", r.Date, r.IAT, err)
		}
		for _, tc := range []struct {
			name string
			date string
			at   time.Time
			want *stir.Error
		}{
			{"60s old", FormatDate(testNow.Add(-60 * time.Second)), time.Time{}, nil},
			{"60s ahead", FormatDate(testNow.Add(60 * time.Second)), time.Time{}, nil},
			{"61s old", FormatDate(testNow.Add(-61 * time.Second)), time.Time{}, stir.ErrSignDate},
			{"61s ahead", FormatDate(testNow.Add(61 * time.Second)), time.Time{}, stir.ErrSignDate},
			{"year 0001", "Mon, 01 Jan 0001 00:00:00 GMT", time.Time{}, stir.ErrSignDate},
			{"fresh but before the certificate", FormatDate(cred.NotBefore.Add(-10 * time.Second)), cred.NotBefore.Add(30 * time.Second), stir.ErrSignCertInvalid},
			{"at notBefore", FormatDate(cred.NotBefore), cred.NotBefore.Add(30 * time.Second), nil},
			{"after the certificate", "", cred.NotAfter.Add(time.Second), stir.ErrSignCertInvalid},
			{"fresh but after the certificate", FormatDate(cred.NotAfter.Add(10 * time.Second)), cred.NotAfter.Add(-30 * time.Second), stir.ErrSignCertInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := f.signer.Sign(ctx, SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}, Date: tc.date, At: tc.at})
				if tc.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					d, _ := http.ParseTime(tc.date)
					if r.IAT != d.Unix() || r.Date != tc.date {
						t.Fatalf("iat %d date %q, want iat from Date %q", r.IAT, r.Date, tc.date)
					}
					return
				}
				if e := stir.As(err); e == nil || e.Name != tc.want.Name || e.SIPCode != tc.want.SIPCode {
					t.Fatalf("err %v, want %s", err, tc.want.Name)
				}
			})
		}
	})

	t.Run("origid", func(t *testing.T) {
		sign := func(callID, origid string) string {
			r, err := f.signer.Sign(ctx, SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}, CallID: callID, OrigID: origid})
			if err != nil {
				t.Fatal(err)
			}
			return r.OrigID
		}
		a1, a2, b, r1, r2 := sign("a@host", ""), sign("a@host", ""), sign("b@host", ""), sign("", ""), sign("", "")
		if a1 != a2 || a1 == b || r1 == r2 {
			t.Fatalf("origids: same call %s %s, other call %s, no call %s %s", a1, a2, b, r1, r2)
		}
		for _, u := range []string{a1, b, r1} {
			if !validUUID(u) || strings.ToLower(u) != u || (u[14] != '5' && u[14] != '4') || !strings.ContainsRune("89ab", rune(u[19])) {
				t.Fatalf("origid %q is not an RFC 4122 v4/v5 UUID", u)
			}
		}
		if a1[14] != '5' || r1[14] != '4' {
			t.Fatalf("version: per-call %q, random %q", a1, r1)
		}
		// A caller's UUID is kept verbatim; anything else is refused (§1.8,
		// RFC 8588) unless the signer was built with AnyOrigID.
		if got := sign("a@host", uuidOK); got != uuidOK {
			t.Fatalf("explicit origid replaced by %q", got)
		}
		_, err := f.signer.Sign(ctx, SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}, OrigID: "given-id"})
		if e := stir.As(err); e == nil || e.Name != stir.ErrSignInput.Name {
			t.Fatalf("non-UUID origid: err %v, want %s", err, stir.ErrSignInput.Name)
		}
		cred, _ := f.lab.Signer()
		lenient, err := NewSigner(SignerOptions{Credential: cred, X5U: f.x5u, AnyOrigID: true, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := lenient.Sign(ctx, SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}, OrigID: "given-id"}); err != nil || r.OrigID != "given-id" {
			t.Fatalf("AnyOrigID: %v %+v", err, r)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		for _, tc := range []struct {
			name string
			ctx  context.Context
			req  SignRequest
			want *stir.Error
		}{
			{"plus inside orig", ctx, SignRequest{Orig: "1215+5550121", Dest: []string{destTN}, Attest: "A"}, stir.ErrSignInput},
			{"16-digit dest", ctx, SignRequest{Orig: origTN, Dest: []string{"1215555013100000"}, Attest: "A"}, stir.ErrSignInput},
			{"empty dest entry", ctx, SignRequest{Orig: origTN, Dest: []string{destTN, ""}, Attest: "A"}, stir.ErrSignInput},
			{"To not a number", ctx, SignRequest{Orig: origTN, To: "<sip:bob@example.net>", Attest: "A"}, stir.ErrSignInput},
			{"no orig", ctx, SignRequest{Dest: []string{destTN}, Attest: "A"}, stir.ErrSignInput},
			{"attest lower case", ctx, SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "a"}, stir.ErrSignInput},
			{"cancelled", cctx, SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A"}, stir.ErrInternal},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.signer.Sign(tc.ctx, tc.req)
				if e := stir.As(err); e == nil || e.Name != tc.want.Name {
					t.Fatalf("err %v, want %s", err, tc.want.Name)
				}
			})
		}
	})

	// §1.9 through the Signer: the policy sees the canonical orig (from PAI
	// when present), a per-call attest overrides it, a customer's origid is
	// used when the call gives none.
	t.Run("attestation policy", func(t *testing.T) {
		const acmeID = "11111111-2222-4333-8444-555555555555"
		pol, err := policy.New(policy.Options{
			Customers: []policy.Customer{{Name: "acme", OrigID: acmeID, Numbers: []string{origTN}, Sources: []string{"192.0.2.10"}}},
			Gateways:  []string{"carrier-in"},
		})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSigner(SignerOptions{Credential: cred, X5U: f.x5u, Numbers: tn.NANP(), Policy: pol, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			req    SignRequest
			attest stir.Attestation
			origid string
			want   *stir.Error
		}{
			{"owner via national PAI", SignRequest{From: "<sip:+19995550000@x>", PAI: "<sip:2155550121@x>", To: toHdr, Customer: "acme"}, "A", acmeID, nil},
			{"owner via source", SignRequest{Orig: origTN, Dest: []string{destTN}, Source: "192.0.2.10:5060"}, "A", acmeID, nil},
			{"not the customer's number", SignRequest{Orig: "12155550199", Dest: []string{destTN}, Customer: "acme"}, "B", acmeID, nil},
			{"gateway", SignRequest{Orig: origTN, Dest: []string{destTN}, Source: "carrier-in"}, "C", "", nil},
			{"per-call override keeps the customer's origid", SignRequest{Orig: origTN, Dest: []string{destTN}, Customer: "acme", Attest: "C"}, "C", acmeID, nil},
			{"unknown and no default", SignRequest{Orig: origTN, Dest: []string{destTN}, Source: "198.51.100.1"}, "", "", stir.ErrSignNotAllowed},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := s.Sign(ctx, tc.req)
				if tc.want != nil {
					if e := stir.As(err); e == nil || e.Name != tc.want.Name {
						t.Fatalf("err %v, want %s", err, tc.want.Name)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if r.Attest != tc.attest || (tc.origid != "" && r.OrigID != tc.origid) || !validUUID(r.OrigID) {
					t.Fatalf("attest %s origid %s, want %s %s", r.Attest, r.OrigID, tc.attest, tc.origid)
				}
			})
		}
	})

	t.Run("full form only", func(t *testing.T) {
		r, err := f.signer.Sign(ctx, SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}})
		if err != nil {
			t.Fatal(err)
		}
		h, err := identity.Parse(r.Identity)
		if err != nil {
			t.Fatal(err)
		}
		if h.Segments[0] == "" || h.Segments[1] == "" || h.Ppt != "shaken" || h.Alg != "ES256" || h.Info != f.x5u {
			t.Fatalf("%+v", h)
		}
	})
}

// FuzzVerify feeds hostile Identity, From and To values through the whole
// pipeline. The credential is preloaded and the verifier offline, so the
// fuzzer never waits on the network; a token signed at run time is added
// as a seed so that the passing path is explored too.
func FuzzVerify(f *testing.F) {
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
	good, err := s.Sign(context.Background(), SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", OrigID: uuidOK})
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(VerifierOptions{
		Roots:   lab.Roots(),
		Numbers: tn.NANP(),
		Fetch: x5u.Options[*certs.Credential]{
			Offline:      true,
			PreloadBytes: map[string][]byte{u: lab.ChainPEM()},
		},
		Now: func() time.Time { return testNow },
	})
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	f.Add(good.Identity, fromHdr, toHdr)
	f.Add(good.Identity+","+good.Identity, "tel:+12155550121", "<tel:+12155550131>")
	f.Add(strings.Replace(good.Identity, "ppt=shaken", `ppt="div"`, 1), fromHdr, toHdr)

	codes := map[int]bool{403: true, 428: true, 436: true, 437: true, 438: true}
	f.Fuzz(func(t *testing.T, ident, from, to string) {
		r := v.Verify(context.Background(), VerifyRequest{Identity: []string{ident}, From: from, To: to})
		if r == nil {
			t.Fatal("nil result")
		}
		switch r.Result {
		case stir.Pass:
			if r.Verstat != stir.VerstatPassed || r.Err != nil || r.Orig == "" || len(r.Dest) == 0 {
				t.Fatalf("pass %+v", r)
			}
		case stir.Fail:
			if r.Err == nil || r.Err.Name != r.Error || !codes[r.SIPCode] || r.Verstat != stir.VerstatFailed || r.Error == stir.ErrInternal.Name {
				t.Fatalf("fail %+v", r)
			}
		case stir.None:
			if r.Verstat != stir.VerstatNone || r.SIPCode != 0 {
				t.Fatalf("none %+v", r)
			}
		default:
			t.Fatalf("result %q", r.Result)
		}
	})
}

// lateClock puts the verifier's clock 999 ms past testNow.
func lateClock(o *VerifierOptions) {
	o.Now = func() time.Time { return testNow.Add(999 * time.Millisecond) }
}

// TestReviewRegressions holds the defects this review found, one case per
// defect, each of which failed before its fix.
func TestReviewRegressions(t *testing.T) {
	f := newFixture(t)
	good := f.sign(SignRequest{})
	f.runReview(t, []reviewCase{
		// time.Duration saturates 7973 years to its minimum, whose
		// absolute value overflowed back to a negative "age".
		{name: "verify Date year 9999", identity: []string{good}, date: "Fri, 31 Dec 9999 23:59:59 GMT", result: stir.Fail, want: stir.ErrStaleDate},
		// The same saturation made a far-future iat pass freshness, and an
		// iat near MaxInt64 overflowed time.Unix into the distant past.
		{name: "iat 400 years ahead", identity: []string{f.signedClaims(claimsJSON(testNow.Unix() + 400*365*24*3600))}, result: stir.Fail, want: stir.ErrFutureIAT},
		{name: "iat max int64", identity: []string{f.signedClaims(claimsJSON(math.MaxInt64))}, result: stir.Fail, want: stir.ErrFutureIAT},
		// §2 is ordered: a header that fails rows 5 or 6 is reported as such
		// even when the request's Date (row 7) is bad too.
		{name: "row 5 before Date", identity: []string{raw(t, f.lab.LeafKey, strings.Replace(hdrJSON(f.x5u), `"ES256"`, `"none"`, 1), claimsJSON(testNow.Unix()), f.x5u)},
			date: FormatDate(testNow.Add(-2 * time.Minute)), result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "row 6 before Date", identity: []string{f.signedClaims(strings.Replace(claimsJSON(testNow.Unix()), `"attest":"A"`, `"attest":"D"`, 1))},
			date: "yesterday", result: stir.Fail, want: stir.ErrAttestInvalid},
		{name: "iat before Date", identity: []string{f.signedClaims(claimsJSON(testNow.Unix() - 120))},
			date: FormatDate(testNow.Add(-2 * time.Minute)), result: stir.Fail, want: stir.ErrStaleIAT},
		// An HS256 token as an attacker sends it carries a 32-byte MAC; the
		// signature's length (row 12) was checked before alg (row 5).
		{name: "HS256 with its own 32-byte MAC", identity: []string{hs256Raw(t, strings.Replace(hdrJSON(f.x5u), `"ES256"`, `"HS256"`, 1), claimsJSON(testNow.Unix()), f.lab.Leaf.Raw, f.x5u)},
			result: stir.Fail, want: stir.ErrAlgUnsupported},
		{name: "short signature, bad claims", identity: []string{func() string {
			v := f.signedClaims(strings.Replace(claimsJSON(testNow.Unix()), `"attest":"A"`, `"attest":"D"`, 1))
			return strings.Replace(v, ";", "AAAA;", 1)
		}()}, result: stir.Fail, want: stir.ErrAttestInvalid},
		// iat and Date have whole seconds: the windows compare whole seconds,
		// or a token exactly at the limit fails for most of each second.
		{name: "iat 60s old, clock mid-second", identity: []string{f.signedClaims(claimsJSON(testNow.Unix() - 60))},
			mod: lateClock, result: stir.Pass},
		{name: "iat 61s old, clock mid-second", identity: []string{f.signedClaims(claimsJSON(testNow.Unix() - 61))},
			mod: lateClock, result: stir.Fail, want: stir.ErrStaleIAT},
		{name: "iat 60s ahead, clock mid-second", identity: []string{f.signedClaims(claimsJSON(testNow.Unix() + 60))},
			mod: lateClock, result: stir.Pass},
		{name: "iat 61s ahead, clock mid-second", identity: []string{f.signedClaims(claimsJSON(testNow.Unix() + 61))},
			mod: lateClock, result: stir.Fail, want: stir.ErrFutureIAT},
		{name: "Date 60s old, clock mid-second", identity: []string{good}, date: FormatDate(testNow.Add(-60 * time.Second)),
			mod: lateClock, result: stir.Pass},
		{name: "Date 61s old, clock mid-second", identity: []string{good}, date: FormatDate(testNow.Add(-61 * time.Second)),
			mod: lateClock, result: stir.Fail, want: stir.ErrStaleDate},
		{name: "Date before row 8", identity: []string{good}, from: "<sip:+12155550199@example.com>",
			date: FormatDate(testNow.Add(-2 * time.Minute)), result: stir.Fail, want: stir.ErrStaleDate},
	})
	t.Run("sign Date 60s old, clock mid-second", func(t *testing.T) {
		at := testNow.Add(999 * time.Millisecond)
		d := FormatDate(testNow.Add(-60 * time.Second))
		r, err := f.signer.Sign(context.Background(), SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}, Date: d, At: at})
		if err != nil || r.IAT != testNow.Unix()-60 || r.Date != d {
			t.Fatalf("%+v %v", r, err)
		}
		_, err = f.signer.Sign(context.Background(), SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}, Date: FormatDate(testNow.Add(-61 * time.Second)), At: at})
		if e := stir.As(err); e == nil || e.Name != stir.ErrSignDate.Name {
			t.Fatalf("err %v, want %s", err, stir.ErrSignDate.Name)
		}
	})
	// §1.10: a credential built by hand, not by certs.LoadSigner, must not
	// get past NewSigner with a key that is not its certificate's.
	t.Run("NewSigner refuses a key that does not match its leaf", func(t *testing.T) {
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		cred := *f.signer.Credential()
		cred.Key = other
		_, err = NewSigner(SignerOptions{Credential: &cred, X5U: f.x5u})
		if e := stir.As(err); e == nil || e.Name != stir.ErrSignKey.Name {
			t.Fatalf("err %v, want %s", err, stir.ErrSignKey.Name)
		}
		// A bare key (no certificate, as the CLI's --key alone) still works.
		if _, err := NewSigner(SignerOptions{Credential: &certs.SigningCredential{Key: other}, X5U: f.x5u}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("sign Date year 9999", func(t *testing.T) {
		_, err := f.signer.Sign(context.Background(), SignRequest{Attest: "A", Orig: origTN, Dest: []string{destTN}, Date: "Fri, 31 Dec 9999 23:59:59 GMT"})
		if e := stir.As(err); e == nil || e.Name != stir.ErrSignDate.Name {
			t.Fatalf("err %v, want %s", err, stir.ErrSignDate.Name)
		}
	})
}

func TestSignerRefusesUnusableX5U(t *testing.T) {
	f := newFixture(t)
	cred, err := f.lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"", "/relative.pem", "https://a.example/x>y", "https://a.example/x;y", "https://a.example/a b", "cert.pem"} {
		if _, err := NewSigner(SignerOptions{Credential: cred, X5U: u}); stir.As(err) == nil || stir.As(err).Name != stir.ErrSignCertInvalid.Name {
			t.Errorf("x5u %q: err %v", u, err)
		}
	}
}
