package tn

import (
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

var tnInvalid = stir.ErrTNInvalid.Name

func TestCanonical(t *testing.T) {
	uk := Rules{National: []Rule{{Length: 11, Prefix: "0", Strip: "0", Add: "44"}}}
	cases := []struct {
		name string
		in   string
		r    Rules
		want string
		err  string
	}{
		{"E.164 with separators", "+1 (215) 555-0121", NANP(), "12155550121", ""},
		{"already canonical", "12155550121", NANP(), "12155550121", ""},
		{"NANP national", "2155550121", NANP(), "12155550121", ""},
		{"NANP national with separators", "(215) 555.0121", NANP(), "12155550121", ""},
		{"plus skips national rules", "+2155550121", NANP(), "2155550121", ""},
		{"no rules", "2155550121", Rules{}, "2155550121", ""},
		{"NANP other length untouched", "5550121", NANP(), "5550121", ""},
		{"UK trunk prefix", "01632 960000", uk, "441632960000", ""},
		{"UK prefix mismatch", "11632960000", uk, "11632960000", ""},
		{"UK international", "+44 1632 960000", uk, "441632960000", ""},
		{"first rule wins", "2155550121", Rules{National: []Rule{{Length: 10, Prefix: "215", Add: "9"}, {Length: 10, Add: "1"}}}, "92155550121", ""},
		{"second rule", "3105550121", Rules{National: []Rule{{Length: 10, Prefix: "215", Add: "9"}, {Length: 10, Add: "1"}}}, "13105550121", ""},
		{"any-length rule", "555", Rules{National: []Rule{{Add: "7"}}}, "7555", ""},
		{"hash", "#123", NANP(), "#123", ""},
		{"star", "*67", NANP(), "*67", ""},
		{"star with separators", " *6-7", NANP(), "*67", ""},
		{"one digit", "1", NANP(), "1", ""},
		{"fifteen digits", "+123456789012345", NANP(), "123456789012345", ""},
		{"separators only around", " 1 ", NANP(), "1", ""},

		{"empty", "", NANP(), "", tnInvalid},
		{"separators only", "() -. ", NANP(), "", tnInvalid},
		{"plus only", "+", NANP(), "", tnInvalid},
		{"hash only", "#", NANP(), "", tnInvalid},
		{"sixteen digits", "1234567890123456", NANP(), "", tnInvalid},
		{"rule makes sixteen", "123456789012345", Rules{National: []Rule{{Add: "9"}}}, "", tnInvalid},
		{"rule adds non-digits", "2155550121", Rules{National: []Rule{{Length: 10, Add: "x"}}}, "", tnInvalid},
		{"letters", "1-800-FLOWERS", NANP(), "", tnInvalid},
		{"vanity letter", "215555012a", NANP(), "", tnInvalid},
		{"two plus", "++12155550121", NANP(), "", tnInvalid},
		{"plus inside", "1+2155550121", NANP(), "", tnInvalid},
		{"hash inside", "12#3", NANP(), "", tnInvalid},
		{"plus hash", "+#12", NANP(), "", tnInvalid},
		{"hash plus", "#+12", NANP(), "", tnInvalid},
		{"two stars", "**67", NANP(), "", tnInvalid},
		{"tab", "215\t5550121", NANP(), "", tnInvalid},
		{"slash", "215/5550121", NANP(), "", tnInvalid},
		// User parameters end the number (RFC 4904 trunk groups, RFC 4694).
		{"npdi", "12155550121;npdi", NANP(), "12155550121", ""},
		{"tgrp and trunk-context", "+12155550121;tgrp=TG-1;trunk-context=example.com", NANP(), "12155550121", ""},
		{"national with tgrp", "2155550121;tgrp=1;trunk-context=+1", NANP(), "12155550121", ""},
		{"only parameters", ";tgrp=1", NANP(), "", tnInvalid},
		{"plus then parameters", "+;tgrp=1", NANP(), "", tnInvalid},
		{"NUL", "1215\x005550121", NANP(), "", tnInvalid},
		{"full-width digit", "１2155550121", NANP(), "", tnInvalid},
		{"URI", "sip:12155550121@host", NANP(), "", tnInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonical(tc.in, tc.r)
			checkErr(t, err, tc.err)
			if got != tc.want {
				t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if err == nil && !ValidClaimTN(got) {
				t.Errorf("Canonical(%q) = %q is not a valid claim TN", tc.in, got)
			}
		})
	}
}

func TestValidClaimTN(t *testing.T) {
	for s, want := range map[string]bool{
		"12155550121":      true,
		"1":                true,
		"#1":               true,
		"*67":              true,
		"123456789012345":  true,
		"#123456789012345": true,
		"":                 false,
		"#":                false,
		"*":                false,
		"+12155550121":     false,
		"1234567890123456": false,
		"#*1":              false,
		"1#":               false,
		"1-2":              false,
		" 1":               false,
	} {
		if got := ValidClaimTN(s); got != want {
			t.Errorf("ValidClaimTN(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestRulesValidate(t *testing.T) {
	cases := []struct {
		name string
		r    Rules
		err  string
	}{
		{"zero", Rules{}, ""},
		{"NANP", NANP(), ""},
		{"UK", Rules{National: []Rule{{Length: 11, Prefix: "0", Strip: "0", Add: "44"}}}, ""},
		{"non-digit add", Rules{National: []Rule{{Length: 10, Add: "+1"}}}, tnInvalid},
		{"non-digit prefix", Rules{National: []Rule{{Prefix: "x", Add: "1"}}}, tnInvalid},
		{"non-digit strip", Rules{National: []Rule{{Strip: "-", Add: "1"}}}, tnInvalid},
		{"negative length", Rules{National: []Rule{{Length: -1, Add: "1"}}}, tnInvalid},
		{"long length", Rules{National: []Rule{{Length: 16, Add: "1"}}}, tnInvalid},
		{"no-op rule", Rules{National: []Rule{{Length: 10}}}, tnInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkErr(t, tc.r.Validate(), tc.err) })
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

// BenchmarkParse measures the two readers a verifier runs per request.
func BenchmarkParse(b *testing.B) {
	r := NANP()
	for _, in := range []string{"12155550121", "+1 (215) 555-0121", "2155550121"} {
		b.Run("Canonical/"+in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Canonical(in, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, in := range []string{
		`"Alice" <sip:+12155550121;npdi;rn=+12155550000@example.com;user=phone>;tag=x`,
		"<tel:+1-215-555-0121>",
	} {
		b.Run("FromHeader/"+in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FromHeader(in, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
