package resultjson

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

// encode writes r as libstirgate does (cshared mustJSON).
func encode(t testing.TB, r *stir.Result) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// want is what the C reader must return for s: the string as JSON
// carries it (invalid UTF-8 replaced), without control characters.
func want(s string) string {
	b, _ := json.Marshal(s)
	var v string
	_ = json.Unmarshal(b, &v)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}

func TestResultJSON(t *testing.T) {
	pass := encode(t, &stir.Result{Result: stir.Pass, Verstat: "TN-Validation-Passed",
		Detail: `a "div":[{"tn":"666"}] and "rcd":{"nam":"Evil"} in a string`,
		Div:    []stir.Div{{TN: "12155550131"}, {TN: "12155550141"}},
		RCD:    &stir.RCD{Nam: "ACME \"Corp\" \u00e9\U0001F600", Jcd: json.RawMessage(`["vcard",[["fn",{},"text","x"]]]`), Crn: "Your order\n"}})
	fail := encode(t, &stir.Result{Result: stir.Fail, Error: "div_chain_broken", Detail: `"div":[{"tn":"666"}]`})
	cases := []struct {
		name, js, key, want string
		n                   int
	}{
		{"div", pass, "", "12155550131,12155550141", 2},
		{"nam", pass, "nam", "ACME \"Corp\" \u00e9\U0001F600", len("ACME \"Corp\" \u00e9\U0001F600")},
		{"crn without its newline", pass, "crn", "Your order", len("Your order")},
		{"jcd is not a string", pass, "jcd", "", -1},
		{"icn absent", pass, "icn", "", 0},
		{"failure has no div", fail, "", "", 0},
		{"failure has no rcd", fail, "nam", "", 0},
		{"empty div", `{"div":[]}`, "", "", 0},
		{"escaped tn", `{"div":[{"x":[1,{"tn":"no"}],"tn":"1\u0032"}]}`, "", "12", 1},
		{"truncated", `{"div":[{"tn":"1"}`, "", "", -1},
		{"div not an array", `{"div":"1"}`, "", "", -1},
		{"not an object", `["div"]`, "nam", "", 0},
		{"nesting bound", `{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `,"div":[{"tn":"1"}]}`, "", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got string
			var n int
			if c.key == "" {
				got, n = Div(c.js, 256)
			} else {
				got, n = RCD(c.js, c.key, 256)
			}
			if got != c.want || n != c.n {
				t.Errorf("got %q, %d; want %q, %d", got, n, c.want, c.n)
			}
		})
	}
	// Too small a buffer: nothing rather than a truncated value.
	if got, n := Div(pass, 12); got != "" || n != -1 {
		t.Errorf("small buffer: %q, %d", got, n)
	}
	if got, n := RCD(pass, "nam", 5); got != "" || n != -1 {
		t.Errorf("small buffer: %q, %d", got, n)
	}
}

// FuzzResultFields: whatever the claims hold, the C reader returns what
// the Go encoder put in, and nothing a detail string pretends.
func FuzzResultFields(f *testing.F) {
	f.Add("ACME Corp", "Delivery", "12155550131", `"div":[{"tn":"1"}]`, `["vcard",[]]`)
	f.Add("\x00\x7f\xff\"\\", "\u2028", "", "}", `{"a":"]"}`)
	f.Fuzz(func(t *testing.T, nam, crn, tn, detail, jcd string) {
		r := &stir.Result{Result: stir.Pass, Detail: detail, Div: []stir.Div{{TN: tn}, {TN: "1"}},
			RCD: &stir.RCD{Nam: nam, Crn: crn}}
		if json.Valid([]byte(jcd)) {
			r.RCD.Jcd = json.RawMessage(jcd)
		}
		js := encode(t, r)
		if strings.IndexByte(js, 0) >= 0 {
			return // a C string ends there; the encoder never writes NUL
		}
		// A value that does not fit the buffer (and its NUL) is left out,
		// never truncated.
		const size = 4096
		if wd := want(tn) + ",1"; len(wd) >= size {
			if got, n := Div(js, size); got != "" || n != -1 {
				t.Errorf("div too long for the buffer: %q, %d", got, n)
			}
		} else if got, n := Div(js, size); n != 2 || got != wd {
			t.Errorf("div %q, %d from %s", got, n, js)
		}
		for key, v := range map[string]string{"nam": nam, "crn": crn} {
			got, n := RCD(js, key, size)
			if len(want(v)) >= size {
				if got != "" || n != -1 {
					t.Errorf("%s too long for the buffer: %q, %d", key, got, n)
				}
			} else if v == "" {
				if got != "" || n != 0 {
					t.Errorf("%s %q, %d for an empty value", key, got, n)
				}
			} else if got != want(v) || n != len(got) {
				t.Errorf("%s %q, %d; want %q from %s", key, got, n, want(v), js)
			}
		}
	})
}

// FuzzResultJSON: any input, any buffer size: no crash, output within
// the buffer, and a failure leaves it empty.
func FuzzResultJSON(f *testing.F) {
	f.Add(`{"result":"pass","div":[{"tn":"1"},{"tn":"2"}],"rcd":{"nam":"A","crn":"B"}}`, uint8(16))
	f.Add(`{"div":[{"tn":"\ud83d\ude00\ud800"}]}`, uint8(3))
	f.Add(`{"rcd":{"nam":"\`, uint8(1))
	f.Fuzz(func(t *testing.T, js string, size uint8) {
		sz := int(size) + 1
		d, n := Div(js, sz)
		if len(d) >= sz || (n < 0 && d != "") {
			t.Errorf("div %q, %d with %d bytes", d, n, sz)
		}
		for _, key := range []string{"nam", "crn"} {
			v, n := RCD(js, key, sz)
			if len(v) >= sz || (n < 0 && v != "") || (n >= 0 && n != len(v)) {
				t.Errorf("%s %q, %d with %d bytes", key, v, n, sz)
			}
		}
	})
}
