package passport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stirgate/stirgate/core/stir"
)

const testX5U = "https://cert.example.org/passport.pem"

func testKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var goodClaims = Claims{
	Attest: "A",
	Dest:   []string{"12155550131"},
	IAT:    1700000000,
	Orig:   "12155550121",
	OrigID: "123e4567-e89b-12d3-a456-426614174000",
}

func TestEncodeIsCanonical(t *testing.T) {
	c := goodClaims
	c.Dest = []string{"12155550133", "12155550131", "12155550133"}
	got := string(MarshalClaims(c))
	want := `{"attest":"A","dest":{"tn":["12155550131","12155550133"]},"iat":1700000000,"orig":{"tn":"12155550121"},"origid":"123e4567-e89b-12d3-a456-426614174000"}`
	if got != want {
		t.Fatalf("claims\n got %s\nwant %s", got, want)
	}
	if c.Dest[0] != "12155550133" {
		t.Fatal("MarshalClaims reordered the caller's slice")
	}
	h, _ := b64.DecodeString(EncodeHeader("https://x.example/a/b.pem?&<>"))
	wantH := `{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://x.example/a/b.pem?&<>"}`
	if string(h) != wantH {
		t.Fatalf("header\n got %s\nwant %s", h, wantH)
	}
}

func TestSignParseVerify(t *testing.T) {
	k := testKey(t)
	tok, err := Sign(EncodeHeader(testX5U), goodClaims, k)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(&k.PublicKey); err != nil {
		t.Fatal(err)
	}
	if !p.Canonical() {
		t.Fatal("own token not canonical")
	}
	if p.Header.X5U != testX5U || p.Claims.Orig != goodClaims.Orig || p.Claims.IAT != goodClaims.IAT {
		t.Fatalf("round trip: %+v", p)
	}
	// Tampering with one claim byte must fail the signature.
	parts := strings.Split(tok, ".")
	claims, _ := b64.DecodeString(parts[1])
	tampered := strings.Replace(string(claims), "12155550121", "12155550122", 1)
	tok2 := parts[0] + "." + b64.EncodeToString([]byte(tampered)) + "." + parts[2]
	p2, err := Parse(tok2)
	if err != nil {
		t.Fatal(err)
	}
	assertName(t, p2.Verify(&k.PublicKey), stir.ErrSignatureInvalid)
	other := testKey(t)
	assertName(t, p.Verify(&other.PublicKey), stir.ErrSignatureInvalid)
}

func assertName(t *testing.T, err error, want *stir.Error) {
	t.Helper()
	e := stir.As(err)
	if e == nil {
		t.Fatalf("err = %v, want %s", err, want.Name)
	}
	if e.Name != want.Name {
		t.Fatalf("err = %s (%v), want %s", e.Name, err, want.Name)
	}
}

// build makes a token from raw JSON, signed with k (or with sig when set).
func build(t *testing.T, k *ecdsa.PrivateKey, header, claims string) string {
	t.Helper()
	in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodES256.Sign(in, k)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig)
}

const (
	hdrOK    = `{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"https://cert.example.org/passport.pem"}`
	claimsOK = `{"attest":"A","dest":{"tn":["12155550131"]},"iat":1700000000,"orig":{"tn":"12155550121"},"origid":"123e4567-e89b-12d3-a456-426614174000"}`
)

func TestParseRejects(t *testing.T) {
	k := testKey(t)
	claims := func(old, new string) string { return strings.Replace(claimsOK, old, new, 1) }
	hdr := func(old, new string) string { return strings.Replace(hdrOK, old, new, 1) }
	good := build(t, k, hdrOK, claimsOK)
	parts := strings.Split(good, ".")

	tests := []struct {
		name  string
		token string
		want  *stir.Error
	}{
		{"alg none", build(t, k, hdr(`"ES256"`, `"none"`), claimsOK), stir.ErrAlgUnsupported},
		{"alg HS256", build(t, k, hdr(`"ES256"`, `"HS256"`), claimsOK), stir.ErrAlgUnsupported},
		{"alg ES384", build(t, k, hdr(`"ES256"`, `"ES384"`), claimsOK), stir.ErrAlgUnsupported},
		{"alg RS256", build(t, k, hdr(`"ES256"`, `"RS256"`), claimsOK), stir.ErrAlgUnsupported},
		{"alg lowercase", build(t, k, hdr(`"ES256"`, `"es256"`), claimsOK), stir.ErrAlgUnsupported},
		{"alg missing", build(t, k, hdr(`"alg":"ES256",`, ``), claimsOK), stir.ErrAlgUnsupported},
		{"alg case variant member", build(t, k, hdr(`"alg"`, `"ALG"`), claimsOK), stir.ErrAlgUnsupported},
		{"alg duplicate", build(t, k, hdr(`{`, `{"alg":"none",`), claimsOK), stir.ErrJSONMalformed},
		{"alg case duplicate", build(t, k, hdr(`{`, `{"Alg":"none",`), claimsOK), stir.ErrJSONMalformed},
		{"typ JWT", build(t, k, hdr(`"passport"`, `"JWT"`), claimsOK), stir.ErrTypInvalid},
		{"typ missing", build(t, k, hdr(`"typ":"passport",`, ``), claimsOK), stir.ErrTypInvalid},
		{"ppt div", build(t, k, hdr(`"shaken"`, `"div"`), claimsOK), stir.ErrPptInvalid},
		{"ppt missing", build(t, k, hdr(`"ppt":"shaken",`, ``), claimsOK), stir.ErrPptInvalid},
		{"x5u missing", build(t, k, hdr(`,"x5u":"https://cert.example.org/passport.pem"`, ``), claimsOK), stir.ErrX5UMismatch},
		{"x5u number", build(t, k, hdr(`"https://cert.example.org/passport.pem"`, `5`), claimsOK), stir.ErrX5UMismatch},
		{"crit", build(t, k, hdr(`}`, `,"crit":["div"]}`), claimsOK), stir.ErrCritUnsupported},
		{"header not object", build(t, k, `[1]`, claimsOK), stir.ErrJSONMalformed},
		{"header trailing", build(t, k, hdrOK+"x", claimsOK), stir.ErrJSONMalformed},
		{"iat string", build(t, k, hdrOK, claims(`1700000000`, `"1700000000"`)), stir.ErrIATInvalid},
		{"iat float", build(t, k, hdrOK, claims(`1700000000`, `1700000000.0`)), stir.ErrIATInvalid},
		{"iat exponent", build(t, k, hdrOK, claims(`1700000000`, `1.7e9`)), stir.ErrIATInvalid},
		{"iat negative", build(t, k, hdrOK, claims(`1700000000`, `-5`)), stir.ErrIATInvalid},
		{"iat zero", build(t, k, hdrOK, claims(`1700000000`, `0`)), stir.ErrIATInvalid},
		{"iat huge", build(t, k, hdrOK, claims(`1700000000`, `99999999999999999999`)), stir.ErrIATInvalid},
		{"iat missing", build(t, k, hdrOK, claims(`"iat":1700000000,`, ``)), stir.ErrIATInvalid},
		{"iat duplicate", build(t, k, hdrOK, claims(`{`, `{"iat":1,`)), stir.ErrJSONMalformed},
		{"IAT case variant", build(t, k, hdrOK, claims(`{`, `{"IAT":1,`)), stir.ErrJSONMalformed},
		{"orig plus", build(t, k, hdrOK, claims(`"12155550121"`, `"+12155550121"`)), stir.ErrOrigInvalid},
		{"orig uri", build(t, k, hdrOK, claims(`"orig":{"tn":"12155550121"}`, `"orig":{"uri":"sip:a@b"}`)), stir.ErrOrigInvalid},
		{"orig two members", build(t, k, hdrOK, claims(`"orig":{"tn":"12155550121"}`, `"orig":{"tn":"12155550121","uri":"sip:a@b"}`)), stir.ErrOrigInvalid},
		{"orig string", build(t, k, hdrOK, claims(`{"tn":"12155550121"}`, `"{\"tn\":\"12155550121\"}"`)), stir.ErrOrigInvalid},
		{"orig too long", build(t, k, hdrOK, claims(`"12155550121"`, `"1215555012112345"`)), stir.ErrOrigInvalid},
		{"orig dup", build(t, k, hdrOK, claims(`{`, `{"orig":{"tn":"1"},`)), stir.ErrJSONMalformed},
		{"dest string", build(t, k, hdrOK, claims(`["12155550131"]`, `"12155550131"`)), stir.ErrDestInvalid},
		{"dest empty", build(t, k, hdrOK, claims(`["12155550131"]`, `[]`)), stir.ErrDestInvalid},
		{"dest plus", build(t, k, hdrOK, claims(`["12155550131"]`, `["+12155550131"]`)), stir.ErrDestInvalid},
		{"dest number", build(t, k, hdrOK, claims(`["12155550131"]`, `[12155550131]`)), stir.ErrDestInvalid},
		{"dest missing", build(t, k, hdrOK, claims(`"dest":{"tn":["12155550131"]},`, ``)), stir.ErrDestInvalid},
		{"attest D", build(t, k, hdrOK, claims(`"A"`, `"D"`)), stir.ErrAttestInvalid},
		{"attest lowercase", build(t, k, hdrOK, claims(`"A"`, `"a"`)), stir.ErrAttestInvalid},
		{"attest missing", build(t, k, hdrOK, claims(`"attest":"A",`, ``)), stir.ErrAttestInvalid},
		{"origid empty", build(t, k, hdrOK, claims(`"123e4567-e89b-12d3-a456-426614174000"`, `""`)), stir.ErrOrigIDInvalid},
		{"origid missing", build(t, k, hdrOK, claims(`,"origid":"123e4567-e89b-12d3-a456-426614174000"`, ``)), stir.ErrOrigIDInvalid},
		{"claims not json", build(t, k, hdrOK, `{"attest":`), stir.ErrJSONMalformed},
		{"claims deep", build(t, k, hdrOK, strings.Repeat("[", 100)+strings.Repeat("]", 100)), stir.ErrJSONMalformed},
		{"claims invalid utf8", build(t, k, hdrOK, claims(`"A"`, "\"\xff\"")), stir.ErrJSONMalformed},
		{"four segments", good + ".AAAA", stir.ErrHeaderMalformed},
		{"two segments", parts[0] + "." + parts[1], stir.ErrHeaderMalformed},
		{"compact form", parts[0] + ".." + parts[2], stir.ErrCompactForm},
		{"empty header", "." + parts[1] + "." + parts[2], stir.ErrHeaderMalformed},
		{"padding", parts[0] + "=." + parts[1] + "." + parts[2], stir.ErrHeaderMalformed},
		{"plus in segment", strings.Replace(good, "e", "+", 1), stir.ErrHeaderMalformed},
		{"slash in segment", strings.Replace(good, "e", "/", 1), stir.ErrHeaderMalformed},
		{"space", parts[0] + " ." + parts[1] + "." + parts[2], stir.ErrHeaderMalformed},
		{"CRLF inside", parts[0][:5] + "\r\n" + parts[0][5:] + "." + parts[1] + "." + parts[2], stir.ErrHeaderMalformed},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:40], stir.ErrSignatureMalformed},
		{"DER signature", parts[0] + "." + parts[1] + "." + derSig(t, k, parts[0]+"."+parts[1]), stir.ErrSignatureMalformed},
		{"100 KB", strings.Repeat("A", 100<<10), stir.ErrIdentityTooLong},
		{"empty", "", stir.ErrHeaderMalformed},
	}
	names := map[string]bool{}
	for _, tc := range tests {
		if names[tc.name] {
			t.Fatalf("duplicate case %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.token)
			assertName(t, err, tc.want)
		})
	}
}

func derSig(t *testing.T, k *ecdsa.PrivateKey, in string) string {
	t.Helper()
	d := jwt.SigningMethodES256.Hash.New()
	d.Write([]byte(in))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(sig)
}

func TestSignatureRange(t *testing.T) {
	k := testKey(t)
	good := build(t, k, hdrOK, claimsOK)
	parts := strings.Split(good, ".")
	zero := make([]byte, 64)
	for _, tc := range []struct {
		name string
		sig  []byte
	}{
		{"r=0 s=0", zero},
		{"r=0", append(make([]byte, 32), bytesOf(0x01, 32)...)},
		{"s=n", append(bytesOf(0x01, 32), p256Order.FillBytes(make([]byte, 32))...)},
		{"r=ff..", append(bytesOf(0xff, 32), bytesOf(0x01, 32)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(parts[0] + "." + parts[1] + "." + b64.EncodeToString(tc.sig))
			if err != nil {
				t.Fatal(err)
			}
			assertName(t, p.Verify(&k.PublicKey), stir.ErrSignatureMalformed)
		})
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func TestNonCanonicalButSigned(t *testing.T) {
	k := testKey(t)
	// Whitespace and another member order: valid JSON, valid signature.
	claims := `{ "orig":{"tn":"12155550121"}, "iat":1700000000, "dest":{"tn":["12155550131"]}, "attest":"A", "origid":"x", "rcd":{"nam":"A/B"} }`
	p, err := Parse(build(t, k, hdrOK, claims))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(&k.PublicKey); err != nil {
		t.Fatal(err)
	}
	if p.Canonical() {
		t.Fatal("reordered claims reported canonical")
	}
}

// The libstirshaken sample is validly signed but its orig/dest are JSON
// strings holding JSON: a conformant verifier answers 438.
func TestLibstirshakenVector(t *testing.T) {
	raw, err := os.ReadFile("testdata/sp_passport.txt")
	if err != nil {
		t.Fatal(err)
	}
	var tok string
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "eyJ") && !strings.Contains(line, ";") {
			tok = strings.TrimSpace(line)
			break
		}
	}
	if tok == "" {
		t.Fatal("no token in vector")
	}
	_, err = Parse(tok)
	assertName(t, err, stir.ErrOrigInvalid)

	// The signature itself is good under sp_sp.pub: prove it so the 438
	// above is about claims, not about a broken vector.
	pub := loadPub(t, "testdata/sp_sp.pub")
	i := strings.LastIndexByte(tok, '.')
	sig, _ := b64.DecodeString(tok[i+1:])
	if err := jwt.SigningMethodES256.Verify(tok[:i], sig, pub); err != nil {
		t.Fatalf("vector signature: %v", err)
	}
}

func TestRFC8225Vectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		A struct {
			HeaderJSON  string `json:"header_json"`
			PayloadJSON string `json:"payload_json"`
			Token       string `json:"token"`
		} `json:"appendixA_full_token"`
		S71 struct {
			Token   string `json:"token"`
			Compact string `json:"compact_form"`
		} `json:"section7_1_full_token"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	// Our string encoder must reproduce RFC 8225's deterministic segments.
	parts := strings.Split(v.A.Token, ".")
	if got := base64.RawURLEncoding.EncodeToString([]byte(v.A.HeaderJSON)); got != parts[0] {
		t.Fatalf("appendix A header segment mismatch")
	}
	// Appendix A is a base PASSporT (no ppt, dest.uri): not SHAKEN.
	_, err = Parse(v.A.Token)
	assertName(t, err, stir.ErrPptInvalid)
	// §7.1 carries iat as a string.
	_, err = Parse(v.S71.Token)
	assertName(t, err, stir.ErrPptInvalid)
	_, err = Parse(v.S71.Compact)
	assertName(t, err, stir.ErrCompactForm)
	// The §7.1 signature does verify under A.2's key.
	pub := loadPub(t, "testdata/appendixA.2-public.pem")
	i := strings.LastIndexByte(v.S71.Token, '.')
	sig, _ := b64.DecodeString(v.S71.Token[i+1:])
	if err := jwt.SigningMethodES256.Verify(v.S71.Token[:i], sig, pub); err != nil {
		t.Fatalf("§7.1 signature: %v", err)
	}
}

func loadPub(t *testing.T, path string) *ecdsa.PublicKey {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	if blk == nil {
		t.Fatal("no PEM")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*ecdsa.PublicKey)
}

func FuzzPASSporT(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok, _ := Sign(EncodeHeader(testX5U), goodClaims, k)
	f.Add(tok)
	multi := goodClaims
	multi.Dest = []string{"12155550131", "*12155550100", "12155550131"}
	tok2, _ := Sign(EncodeHeader(testX5U), multi, k)
	f.Add(tok2)
	f.Add("..")
	f.Add("a.b.c")
	rcd := goodClaims
	rcd.RCD = &RCD{Nam: "ACME", Icn: "https://x/i.png", Jcd: `["vcard",[["fn",{},"text","A"]]]`}
	rcd.Crn, rcd.RCDI = "reason", map[string]string{"/icn": "sha256-AAAA", "/jcd": "sha256-BBBB"}
	tokRCD, _ := Sign(EncodeHeader(testX5U), rcd, k)
	f.Add(tokRCD)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			if stir.As(err) == nil {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		_ = p.Verify(&k.PublicKey)
		_ = p.Canonical()

		// What Parse read is what the JSON says, by an independent reader.
		checkClaimsJSON(t, p.ClaimsJSON(), p.Claims)

		// Whatever parses must re-encode to the same claims: signed again
		// with its own x5u, the token parses, verifies, is canonical, and
		// carries the original claims (dest in canonical order).
		again, err := Sign(EncodeHeader(p.Header.X5U), p.Claims, k)
		if err != nil {
			t.Fatalf("re-signing parsed claims: %v", err)
		}
		q, err := Parse(again)
		if err != nil {
			t.Fatalf("re-encoded token does not parse: %v\n%s", err, MarshalClaims(p.Claims))
		}
		if err := q.Verify(&k.PublicKey); err != nil {
			t.Fatalf("re-encoded token does not verify: %v", err)
		}
		if !q.Canonical() {
			t.Fatalf("re-encoded token is not canonical: %s", q.ClaimsJSON())
		}
		want := p.Claims
		want.Dest = CanonicalDest(p.Claims.Dest)
		if !reflect.DeepEqual(q.Claims, want) || q.Header.X5U != p.Header.X5U {
			t.Fatalf("round trip changed the token:\n got %+v %q\nwant %+v %q", q.Claims, q.Header.X5U, want, p.Header.X5U)
		}
		if p.Canonical() && string(q.ClaimsJSON()) != string(p.ClaimsJSON()) {
			t.Fatalf("canonical claims re-encoded differently:\n got %s\nwant %s", q.ClaimsJSON(), p.ClaimsJSON())
		}
		// Rich call data is part of Claims: the DeepEqual above covers it.
	})
}

// checkClaimsJSON reads claims with encoding/json (not this package's
// reader) and compares them with what Parse returned. Parse is stricter
// (duplicate and case-variant members, invalid UTF-8), so only what it
// accepted is compared.
func checkClaimsJSON(t *testing.T, raw []byte, c Claims) {
	t.Helper()
	if !utf8.Valid(raw) {
		return
	}
	var m struct {
		Attest string                `json:"attest"`
		Dest   struct{ TN []string } `json:"dest"`
		IAT    json.Number           `json:"iat"`
		Orig   struct{ TN string }   `json:"orig"`
		OrigID string                `json:"origid"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("Parse accepted claims encoding/json refuses: %v\n%s", err, raw)
	}
	iat, err := m.IAT.Int64()
	if err != nil || iat != c.IAT || m.Orig.TN != c.Orig || m.OrigID != c.OrigID ||
		m.Attest != string(c.Attest) || !reflect.DeepEqual(m.Dest.TN, c.Dest) {
		t.Fatalf("claims %s read as %+v by encoding/json, %+v by Parse", raw, m, c)
	}
}

func BenchmarkSign(b *testing.B) {
	k := testKey(b)
	h := EncodeHeader(testX5U)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(h, goodClaims, k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	k := testKey(b)
	tok, _ := Sign(EncodeHeader(testX5U), goodClaims, k)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDERToRaw(t *testing.T) {
	k := testKey(t)
	for i := 0; i < 200; i++ { // short r or s (leading zero bytes) turn up about 1 in 128
		d := sha256.Sum256([]byte{byte(i)})
		der, err := ecdsa.SignASN1(rand.Reader, k, d[:])
		if err != nil {
			t.Fatal(err)
		}
		var raw [64]byte
		if !derToRaw(der, &raw) {
			t.Fatalf("derToRaw refused %x", der)
		}
		r := new(big.Int).SetBytes(raw[:32])
		s := new(big.Int).SetBytes(raw[32:])
		if !ecdsa.Verify(&k.PublicKey, d[:], r, s) {
			t.Fatalf("converted signature does not verify: %x", der)
		}
	}
	for _, bad := range [][]byte{nil, {0x30, 0}, {0x31, 6, 2, 1, 1, 2, 1, 1}, {0x30, 6, 2, 1, 1, 2, 1}, {0x30, 7, 2, 1, 1, 2, 1, 1, 0}} {
		var raw [64]byte
		if derToRaw(bad, &raw) {
			t.Fatalf("derToRaw accepted %x", bad)
		}
	}
}

var divClaims = Claims{Orig: "12155550121", Dest: []string{"12155550141"}, IAT: 1700000000, Div: "12155550131", HI: "1.2"}

func TestDivRoundTrip(t *testing.T) {
	k := testKey(t)
	tok, err := Sign(EncodeHeaderPpt(testX5U, PptDiv), divClaims, k)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseAs(tok, PptDiv)
	if err != nil {
		t.Fatal(err)
	}
	if p.Header.Ppt != PptDiv || p.Claims.Div != divClaims.Div || p.Claims.HI != "1.2" || !p.Canonical() || p.Verify(&k.PublicKey) != nil {
		t.Fatalf("%+v", p)
	}
	want := `{"dest":{"tn":["12155550141"]},"div":{"hi":"1.2","tn":"12155550131"},"iat":1700000000,"orig":{"tn":"12155550121"}}`
	if string(p.ClaimsJSON()) != want {
		t.Fatalf("claims %s", p.ClaimsJSON())
	}
	// A div PASSporT is not a SHAKEN one, nor the other way round.
	if _, err := Parse(tok); stir.As(err) == nil || stir.As(err).Name != stir.ErrPptInvalid.Name {
		t.Fatalf("Parse of a div token: %v", err)
	}
	shaken, _ := Sign(EncodeHeader(testX5U), goodClaims, k)
	if _, err := ParseAs(shaken, PptDiv); stir.As(err) == nil || stir.As(err).Name != stir.ErrPptInvalid.Name {
		t.Fatalf("ParseAs div of a SHAKEN token: %v", err)
	}
	hdr := `{"alg":"ES256","ppt":"div","typ":"passport","x5u":"` + testX5U + `"}`
	for _, tc := range []struct{ name, claims string }{
		{"div missing", `{"dest":{"tn":["12155550141"]},"iat":1700000000,"orig":{"tn":"12155550121"}}`},
		{"div a string", `{"dest":{"tn":["12155550141"]},"div":"12155550131","iat":1700000000,"orig":{"tn":"12155550121"}}`},
		{"div.tn with plus", `{"dest":{"tn":["12155550141"]},"div":{"tn":"+12155550131"},"iat":1700000000,"orig":{"tn":"12155550121"}}`},
		{"div.uri", `{"dest":{"tn":["12155550141"]},"div":{"uri":"sip:a@b"},"iat":1700000000,"orig":{"tn":"12155550121"}}`},
		{"div extra member", `{"dest":{"tn":["12155550141"]},"div":{"tn":"12155550131","x":1},"iat":1700000000,"orig":{"tn":"12155550121"}}`},
		{"hi a number", `{"dest":{"tn":["12155550141"]},"div":{"hi":1,"tn":"12155550131"},"iat":1700000000,"orig":{"tn":"12155550121"}}`},
		{"hi empty", `{"dest":{"tn":["12155550141"]},"div":{"hi":"","tn":"12155550131"},"iat":1700000000,"orig":{"tn":"12155550121"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAs(build(t, k, hdr, tc.claims), PptDiv)
			if e := stir.As(err); e == nil || e.Name != stir.ErrDivInvalid.Name {
				t.Fatalf("err %v, want div_invalid", err)
			}
		})
	}
}

func FuzzDivPASSporT(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok, _ := Sign(EncodeHeaderPpt(testX5U, PptDiv), divClaims, k)
	f.Add(tok)
	shaken, _ := Sign(EncodeHeader(testX5U), goodClaims, k)
	f.Add(shaken)
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseAs(s, PptDiv)
		if err != nil {
			if stir.As(err) == nil {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if p.Claims.Div == "" || !validTN(p.Claims.Div) {
			t.Fatalf("div PASSporT without a valid div.tn: %+v", p.Claims)
		}
		_ = p.Verify(&k.PublicKey)
		// Whatever parses re-encodes to claims that parse the same way.
		again, err := Sign(EncodeHeaderPpt(testX5U, PptDiv), p.Claims, k)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseAs(again, PptDiv)
		if err != nil || q.Claims.Div != p.Claims.Div || q.Claims.HI != p.Claims.HI || q.Claims.Orig != p.Claims.Orig {
			t.Fatalf("re-encoded div claims differ: %v %+v %+v", err, p.Claims, q)
		}
	})
}
