package identity

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/stirgate/stirgate/core/stir"
)

// A SHAKEN-shaped token: header and claims are short but well-formed
// base64url, the signature is 86 characters like a real ES256 one.
const (
	tokH = "eyJhbGciOiJFUzI1NiJ9"
	tokP = "eyJpYXQiOjF9"
	tokS = "G_6hnwPGAeUalviElXbxl4kKR5qenib6fRrCP-cgwKN2hMsSTXYjIFEhl_VqmeTB8dk9fidroDlFe8dPdyPy3g"
	tok  = tokH + "." + tokP + "." + tokS
	info = "https://cert.example.org/sp.pem"
)

// libstirshakenHeader returns the Identity header value of the published
// libstirshaken sample: the line that carries ";info=".
func libstirshakenHeader(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/sp_passport.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, ";info=") {
			return line
		}
	}
	t.Fatal("no Identity header line in sp_passport.txt")
	return ""
}

type rfc8225Tokens struct {
	AppendixA struct {
		Token string `json:"token"`
	} `json:"appendixA_full_token"`
	S71 struct {
		Token   string `json:"token"`
		Compact string `json:"compact_form"`
	} `json:"section7_1_full_token"`
}

func loadRFC8225(t testing.TB) rfc8225Tokens {
	t.Helper()
	b, err := os.ReadFile("testdata/tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var v rfc8225Tokens
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.AppendixA.Token == "" || v.S71.Token == "" || v.S71.Compact == "" {
		t.Fatal("tokens.json lacks a token")
	}
	return v
}

func TestParseLibstirshaken(t *testing.T) {
	v := libstirshakenHeader(t)
	h, err := Parse(v)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if h.Info != "http://shaken.signalwire.cloud/sp.pem" || h.Alg != "ES256" || h.Ppt != "shaken" || !h.IsShaken() {
		t.Errorf("params = info %q alg %q ppt %q", h.Info, h.Alg, h.Ppt)
	}
	if want := v[:strings.IndexByte(v, ';')]; h.Token != want {
		t.Errorf("Token = %q, want %q", h.Token, want)
	}
	if h.Protected+"."+h.Segments[2] != h.Token || h.Segments[0]+"."+h.Segments[1] != h.Protected {
		t.Errorf("Protected %q and Segments %q do not rebuild Token", h.Protected, h.Segments)
	}
	if h.Raw != v {
		t.Errorf("Raw = %q", h.Raw)
	}
}

func TestParseRFC8225(t *testing.T) {
	v := loadRFC8225(t)
	for _, tc := range []struct {
		name, token, want string
	}{
		{"appendix A", v.AppendixA.Token, ""},
		{"section 7.1", v.S71.Token, ""},
		{"section 7.1 compact", v.S71.Compact, stir.ErrCompactForm.Name},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Parse(Format(tc.token, "https://cert.example.org/passport.cer"))
			checkErr(t, err, tc.want)
			if err == nil && h.Token != tc.token {
				t.Errorf("Token = %q, want %q", h.Token, tc.token)
			}
		})
	}
}

func TestParse(t *testing.T) {
	type want struct {
		info, alg, ppt string
		shaken         bool
	}
	full := want{info, "ES256", "shaken", true}
	cases := []struct {
		name  string
		value string
		err   string // stir error Name, "" for success
		want  want
	}{
		{"format output", Format(tok, info), "", full},
		{"reordered", tok + ";ppt=shaken;alg=ES256;info=<" + info + ">", "", full},
		{"info only", tok + ";info=<" + info + ">", "", want{info, "", "", true}},
		{"SWS around ; and =", tok + " ;\tinfo = <" + info + "> ; alg=\tES256 ;ppt =shaken", "", full},
		{"folded CRLF", tok + "\r\n ;info=<" + info + ">\r\n\t;alg=ES256;ppt=shaken", "", full},
		{"folded bare LF", tok + "\n ;info=<" + info + ">;alg=ES256;ppt=shaken", "", full},
		{"leading and trailing space", "  " + Format(tok, info) + " \t", "", full},
		{"trailing CRLF", Format(tok, info) + "\r\n", "", full},
		{"quoted ppt", tok + `;info=<` + info + `>;alg=ES256;ppt="shaken"`, "", full},
		{"quoted alg", tok + `;info=<` + info + `>;alg="ES256";ppt=shaken`, "", full},
		{"quoted escape", tok + `;info=<` + info + `>;ppt="sha\"ken"`, "", want{info, "", `sha"ken`, false}},
		{"upper-case names", tok + ";INFO=<" + info + ">;Alg=ES256;PPT=shaken", "", full},
		{"unknown params ignored", tok + `;foo=bar;info=<` + info + `>;flag;x="a;b,c";h=[::1]:5060;alg=ES256;ppt=shaken`, "", full},
		{"ppt div", tok + ";info=<" + info + ">;ppt=div", "", want{info, "", "div", false}},
		{"ppt is case-sensitive", tok + ";info=<" + info + ">;ppt=SHAKEN", "", want{info, "", "SHAKEN", false}},
		{"info with query chars", tok + ";info=<https://a.example/x?y=1&z=%20>", "", want{"https://a.example/x?y=1&z=%20", "", "", true}},
		{"info not https", tok + ";info=<file:///etc/passwd>", "", want{"file:///etc/passwd", "", "", true}},

		// Size first.
		{"100 KB", strings.Repeat("A", 100<<10), stir.ErrIdentityTooLong.Name, want{}},
		{"100 KB of spaces after a good header", Format(tok, info) + strings.Repeat(" ", 100<<10), stir.ErrIdentityTooLong.Name, want{}},

		// Token shape.
		{"empty", "", stir.ErrHeaderMalformed.Name, want{}},
		{"only spaces", " \t ", stir.ErrHeaderMalformed.Name, want{}},
		{"no token", ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"padding", tokH + "=." + tokP + "." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"padding in signature", tok + "==;info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"plus", tokH + "." + tokP + "+." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"slash", tokH + "." + tokP + "." + tokS[:10] + "/" + tokS[11:] + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"space inside", tokH + "." + tokP + " ." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"CRLF inside", tokH + "." + tokP + "\r\n." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"folded inside", tokH + "." + tokP + "\r\n ." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"NUL", tokH + "\x00." + tokP + "." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"non-ASCII", tokH + "é." + tokP + "." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"one segment", tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"two segments", tokH + "." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"four segments", tok + "." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"compact", ".." + tokS + ";info=<" + info + ">", stir.ErrCompactForm.Name, want{}},
		{"compact with header", tokH + ".." + tokS + ";info=<" + info + ">", stir.ErrCompactForm.Name, want{}},
		{"empty signature", tokH + "." + tokP + ".;info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"empty header segment", "." + tokP + "." + tokS + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"dots only", "..;info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"impossible base64 length", tokH + "." + tokP + "." + tokS + "AAA;info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"two values joined", Format(tok, info) + "," + Format(tok, info), stir.ErrHeaderMalformed.Name, want{}},
		{"token in angle brackets", "<" + tok + ">;info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},

		// Parameters.
		{"info missing", tok, stir.ErrInfoMissing.Name, want{}},
		{"info missing with others", tok + ";alg=ES256;ppt=shaken", stir.ErrInfoMissing.Name, want{}},
		{"info without brackets", tok + ";info=" + info, stir.ErrInfoMalformed.Name, want{}},
		{"info quoted", tok + `;info="` + info + `"`, stir.ErrInfoMalformed.Name, want{}},
		{"info quoted brackets", tok + `;info="<` + info + `>"`, stir.ErrInfoMalformed.Name, want{}},
		{"info no value", tok + ";info", stir.ErrInfoMalformed.Name, want{}},
		{"info empty", tok + ";info=<>", stir.ErrInfoMalformed.Name, want{}},
		{"info relative", tok + ";info=<sp.pem>", stir.ErrInfoMalformed.Name, want{}},
		{"info network-path", tok + ";info=<//cert.example.org/sp.pem>", stir.ErrInfoMalformed.Name, want{}},
		{"info scheme only", tok + ";info=<https:>", stir.ErrInfoMalformed.Name, want{}},
		{"info bad scheme", tok + ";info=<1ttps://a/b>", stir.ErrInfoMalformed.Name, want{}},
		{"info space", tok + ";info=<https://a.example/ b>", stir.ErrInfoMalformed.Name, want{}},
		{"info tab", tok + ";info=<https://a.example/\tb>", stir.ErrInfoMalformed.Name, want{}},
		{"info control", tok + ";info=<https://a.example/\x01>", stir.ErrInfoMalformed.Name, want{}},
		{"info non-ASCII", tok + ";info=<https://exämple.org/>", stir.ErrInfoMalformed.Name, want{}},
		{"info unterminated", tok + ";info=<" + info, stir.ErrInfoMalformed.Name, want{}},
		{"unknown param unterminated bracket", tok + ";info=<" + info + ">;x=<abc", stir.ErrHeaderMalformed.Name, want{}},
		{"info nested bracket", tok + ";info=<<" + info + ">", stir.ErrInfoMalformed.Name, want{}},
		{"duplicate info", Format(tok, info) + ";info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"duplicate info other case", tok + ";info=<" + info + ">;INFO=<https://other.example/x>", stir.ErrHeaderMalformed.Name, want{}},
		{"duplicate alg", Format(tok, info) + ";alg=ES256", stir.ErrHeaderMalformed.Name, want{}},
		{"duplicate ppt", Format(tok, info) + ";Ppt=div", stir.ErrHeaderMalformed.Name, want{}},
		{"alg no value", tok + ";info=<" + info + ">;alg", stir.ErrHeaderMalformed.Name, want{}},
		{"alg empty quoted", tok + `;info=<` + info + `>;alg=""`, stir.ErrHeaderMalformed.Name, want{}},
		{"ppt empty quoted", tok + `;info=<` + info + `>;ppt=""`, stir.ErrHeaderMalformed.Name, want{}},
		{"ppt in brackets", tok + `;info=<` + info + `>;ppt=<shaken>`, stir.ErrHeaderMalformed.Name, want{}},
		{"equals no value", tok + ";info=<" + info + ">;alg=", stir.ErrHeaderMalformed.Name, want{}},
		{"trailing semicolon", Format(tok, info) + ";", stir.ErrHeaderMalformed.Name, want{}},
		{"empty parameter", tok + ";;info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
		{"garbage after param", Format(tok, info) + " x", stir.ErrHeaderMalformed.Name, want{}},
		{"garbage after info", tok + ";info=<" + info + ">x", stir.ErrHeaderMalformed.Name, want{}},
		{"unterminated quote", tok + `;info=<` + info + `>;ppt="shaken`, stir.ErrHeaderMalformed.Name, want{}},
		{"control in quote", tok + ";info=<" + info + ">;ppt=\"sha\x01ken\"", stir.ErrHeaderMalformed.Name, want{}},
		{"CR in quote", tok + ";info=<" + info + ">;ppt=\"sha\rken\"", stir.ErrHeaderMalformed.Name, want{}},
		{"line break not folding", tok + "\r\n;info=<" + info + ">", stir.ErrHeaderMalformed.Name, want{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Parse(tc.value)
			checkErr(t, err, tc.err)
			if err != nil {
				if h != nil {
					t.Errorf("Parse returned a header with an error")
				}
				return
			}
			got := want{h.Info, h.Alg, h.Ppt, h.IsShaken()}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if h.Token != tok || h.Protected != tokH+"."+tokP || h.Segments != [3]string{tokH, tokP, tokS} {
				t.Errorf("token split wrong: %q %q %q", h.Token, h.Protected, h.Segments)
			}
			if h.Raw != tc.value {
				t.Errorf("Raw = %q", h.Raw)
			}
		})
	}
}

// TestProtectedIsSliced guards the rule that the signing input is the
// received bytes: Protected must share memory with the input.
func TestProtectedIsSliced(t *testing.T) {
	v := Format(tok, info)
	h, err := Parse(v)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, h.Protected) || len(h.Protected) == 0 {
		t.Fatalf("Protected %q is not a prefix of the value", h.Protected)
	}
	if unsafe.StringData(h.Protected) != unsafe.StringData(v) {
		t.Errorf("Protected was copied, not sliced")
	}
}

func TestFormat(t *testing.T) {
	got := Format("a.b.c", "https://x.example/c.pem")
	want := "a.b.c;info=<https://x.example/c.pem>;alg=ES256;ppt=shaken"
	if got != want {
		t.Errorf("Format = %q, want %q", got, want)
	}
}

func TestCollect(t *testing.T) {
	good := Format(tok, info)
	other := Format(tok, "https://other.example/sp.pem")
	div := tok + ";info=<" + info + ">;ppt=div"
	cases := []struct {
		name   string
		values []string
		lim    Limits
		err    string   // request-level error Name
		infos  []string // Info of each parsed header, in order
		errs   []string // Names of per-header errors, in order
	}{
		{"none", nil, Limits{}, "", nil, nil},
		{"one", []string{good}, Limits{}, "", []string{info}, nil},
		{"two headers", []string{good, other}, Limits{}, "", []string{info, "https://other.example/sp.pem"}, nil},
		{"comma joined", []string{good + ", " + other}, Limits{}, "", []string{info, "https://other.example/sp.pem"}, nil},
		{"comma joined folded", []string{good + ",\r\n " + div}, Limits{}, "", []string{info, info}, nil},
		{"comma inside brackets", []string{tok + ";info=<https://a.example/x,y>"}, Limits{}, "", []string{"https://a.example/x,y"}, nil},
		{"comma inside quotes", []string{good + `;x="a,b\",c"`}, Limits{}, "", []string{info}, nil},
		{"good and bad", []string{"garbage", good, tok}, Limits{}, "", []string{info}, []string{stir.ErrHeaderMalformed.Name, stir.ErrInfoMissing.Name}},
		{"empty element", []string{good + ","}, Limits{}, "", []string{info}, []string{stir.ErrHeaderMalformed.Name}},
		{"five is fine", []string{good, good, good, good, good}, Limits{}, "", []string{info, info, info, info, info}, nil},
		{"seven headers", []string{good, good, good, good, good, good, good}, Limits{}, stir.ErrTooManyIdentity.Name, nil, nil},
		{"seven joined", []string{good + "," + good, good + "," + good, good + "," + good, good}, Limits{}, stir.ErrTooManyIdentity.Name, nil, nil},
		{"many commas", []string{strings.Repeat(",", 1000)}, Limits{}, stir.ErrTooManyIdentity.Name, nil, nil},
		{"custom count", []string{good, good}, Limits{MaxCount: 1}, stir.ErrTooManyIdentity.Name, nil, nil},
		{"total bytes", []string{good, good + strings.Repeat(" ", 8192)}, Limits{}, stir.ErrIdentityTooLong.Name, nil, nil},
		{"one 100 KB", []string{strings.Repeat("A", 100<<10)}, Limits{}, stir.ErrIdentityTooLong.Name, nil, nil},
		{"custom bytes", []string{good}, Limits{MaxBytes: 100}, stir.ErrIdentityTooLong.Name, nil, nil},
		{"custom bytes exact", []string{good}, Limits{MaxBytes: len(good)}, "", []string{info}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdrs, errs, err := Collect(tc.values, tc.lim)
			checkErr(t, err, tc.err)
			if err != nil && (hdrs != nil || errs != nil) {
				t.Errorf("request-level error with results: %d headers, %d errors", len(hdrs), len(errs))
			}
			var infos []string
			for _, h := range hdrs {
				infos = append(infos, h.Info)
			}
			if strings.Join(infos, " ") != strings.Join(tc.infos, " ") || len(infos) != len(tc.infos) {
				t.Errorf("infos = %q, want %q", infos, tc.infos)
			}
			if len(errs) != len(tc.errs) {
				t.Fatalf("errs = %v, want names %q", errs, tc.errs)
			}
			for i, e := range errs {
				checkErr(t, e, tc.errs[i])
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	e := stir.As(err)
	if e == nil {
		t.Fatalf("error = %v, want stir error %q", err, want)
	}
	if e.Name != want {
		t.Fatalf("error name = %q (%v), want %q", e.Name, err, want)
	}
}

func BenchmarkParse(b *testing.B) {
	v := libstirshakenHeader(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := Parse(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCollect(b *testing.B) {
	v := libstirshakenHeader(b)
	vals := []string{v, v}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Collect(vals, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
