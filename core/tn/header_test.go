package tn

import (
	"testing"
)

func TestFromHeader(t *testing.T) {
	cases := []struct {
		name  string
		value string
		want  string
		err   string
	}{
		{"name-addr with user params", `"Alice" <sip:+12155550121;npdi;rn=+12155550000@example.com;user=phone>;tag=x`, "12155550121", ""},
		{"addr-spec with header params", "sip:2155550121@host;tag=1", "12155550121", ""},
		{"tel with separators", "tel:+1-215-555-0121;verstat=TN-Validation-Passed", "12155550121", ""},
		{"tel bracketed", "<tel:+1-215-555-0121;verstat=TN-Validation-Passed>;tag=9", "12155550121", ""},
		{"sips", "<sips:+12155550121@example.com>", "12155550121", ""},
		{"scheme case", "<SIP:+12155550121@example.com>", "12155550121", ""},
		{"tel scheme case", "TEL:+12155550121", "12155550121", ""},
		{"unquoted display name", "Alice Smith <sip:2155550121@host>;tag=a", "12155550121", ""},
		{"unquoted comma in display name", "Smith, John <sip:+12155550121@host>;tag=1", "12155550121", ""},
		{"list: first element addr-spec", "tel:+12155550121, <sip:+13105550121@host>", "12155550121", ""},
		{"list: first element name-addr", "<sip:+12155550121@host>, tel:+13105550121", "12155550121", ""},
		{"quoted display name with <", `"A <b> \" c" <sip:+12155550121@host>`, "12155550121", ""},
		{"surrounding space", "  <sip:+12155550121@host>  ", "12155550121", ""},
		{"verstat in user part", "<sip:+12155550121;verstat=TN-Validation-Passed@host;user=phone>", "12155550121", ""},
		{"isub ext cic", "<sip:+12155550121;isub=12;ext=33;cic=+1-0288@host>", "12155550121", ""},
		{"password", "<sip:+12155550121:secret@host>", "12155550121", ""},
		{"percent-encoded plus", "<sip:%2B12155550121@host>", "12155550121", ""},
		{"RFC 4904 trunk group", "<sip:+12155550121;tgrp=TG-1;trunk-context=example.com@host;user=phone>", "12155550121", ""},
		{"RFC 4904 national", "<sip:2155550121;tgrp=1;trunk-context=+1-215@host>", "12155550121", ""},
		{"RFC 4904 tel", "<tel:+12155550121;tgrp=TG-1;trunk-context=example.com>", "12155550121", ""},
		{"percent-encoded trunk group", "<sip:+12155550121%3Btgrp%3DTG-1@host>", "12155550121", ""},
		{"percent-encoded digit", "<sip:%3215%35550121@host>", "12155550121", ""},
		{"user=phone separators", "<sip:+1-215-555-0121@host;user=phone>", "12155550121", ""},
		{"hash code", "<sip:#123@host>", "#123", ""},
		{"IPv6 host", "<sip:+12155550121@[2001:db8::1]:5060>", "12155550121", ""},
		{"uri headers", "<sip:+12155550121@host?Subject=x>", "12155550121", ""},
		{"addr-spec sips", "sips:+12155550121@host", "12155550121", ""},
		{"addr-spec tel with tag", "tel:2155550121;tag=abc", "12155550121", ""},
		{"addr-spec with space before params", "sip:2155550121@host ;tag=1", "12155550121", ""},
		{"tel phone-context kept local", "<tel:5550121;phone-context=+1-215>", "5550121", ""},

		{"empty", "", "", tnInvalid},
		{"spaces", "   ", "", tnInvalid},
		{"display name only", `"Alice"`, "", tnInvalid},
		{"non-numeric user", "<sip:alice@example.com>", "", tnInvalid},
		{"no user part", "<sip:example.com>", "", tnInvalid},
		{"empty user part", "<sip:@example.com>", "", tnInvalid},
		{"empty user with params", "<sip:;npdi@example.com>", "", tnInvalid},
		{"tel empty", "<tel:>", "", tnInvalid},
		{"tel only params", "tel:;verstat=x", "", tnInvalid},
		{"other scheme", "<mailto:12155550121@example.com>", "", tnInvalid},
		{"urn", "<urn:service:sos>", "", tnInvalid},
		{"no scheme", "<12155550121>", "", tnInvalid},
		{"unclosed bracket", "<sip:+12155550121@host", "", tnInvalid},
		{"unclosed quote", `"Alice <sip:+12155550121@host>`, "", tnInvalid},
		{"bad escape", "<sip:%2G12155550121@host>", "", tnInvalid},
		{"truncated escape", "<sip:12155550121%2@host>", "", tnInvalid},
		{"escaped letter", "<sip:%41@host>", "", tnInvalid},
		{"escaped NUL", "<sip:1215%0055@host>", "", tnInvalid},
		{"too long", "<sip:+1234567890123456@host>", "", tnInvalid},
		{"vanity", "<sip:1800FLOWERS@host>", "", tnInvalid},
		{"addr-spec with '>' (fuzz)", "sip:0;>@", "", tnInvalid},
		{"addr-spec with quote", `sip:"1"@h`, "", tnInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromHeader(tc.value, NANP())
			checkErr(t, err, tc.err)
			if got != tc.want {
				t.Errorf("FromHeader(%q) = %q, want %q", tc.value, got, tc.want)
			}
		})
	}
}

const passed = "TN-Validation-Passed"

func TestAddVerstat(t *testing.T) {
	cases := []struct {
		name  string
		value string
		v     string
		want  string
	}{
		{"sip user=phone", "<sip:+12155550121@host;user=phone>", passed,
			"<sip:+12155550121;verstat=TN-Validation-Passed@host;user=phone>"},
		{"display name and tag kept", `"Alice" <sip:+12155550121@example.com>;tag=x`, passed,
			`"Alice" <sip:+12155550121;verstat=TN-Validation-Passed@example.com>;tag=x`},
		{"after user params", "<sip:+12155550121;npdi;rn=+12155550000@host>", passed,
			"<sip:+12155550121;npdi;rn=+12155550000;verstat=TN-Validation-Passed@host>"},
		{"before password", "<sip:+12155550121:pw@host>", passed,
			"<sip:+12155550121;verstat=TN-Validation-Passed:pw@host>"},
		{"sips", "<sips:+12155550121@host>", "No-TN-Validation",
			"<sips:+12155550121;verstat=No-TN-Validation@host>"},
		{"tel", "<tel:+12155550121>", passed, "<tel:+12155550121;verstat=TN-Validation-Passed>"},
		// An anonymous From holds no number: the verstat goes on the PAI only.
		{"anonymous From", `"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1`, passed,
			`"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1`},
		{"anonymous From verstat stripped", `<sip:anonymous;verstat=TN-Validation-Passed@anonymous.invalid>`, passed,
			`<sip:anonymous@anonymous.invalid>`},
		{"after trunk group", "<sip:+12155550121;tgrp=TG-1;trunk-context=example.com@host>", passed,
			"<sip:+12155550121;tgrp=TG-1;trunk-context=example.com;verstat=TN-Validation-Passed@host>"},
		{"tel right after number", "<tel:+12155550121;isub=1>", passed,
			"<tel:+12155550121;verstat=TN-Validation-Passed;isub=1>"},
		{"replaces sip verstat", "<sip:+12155550121;verstat=TN-Validation-Passed@host>", "TN-Validation-Failed",
			"<sip:+12155550121;verstat=TN-Validation-Failed@host>"},
		{"replaces tel verstat", "<tel:+12155550121;verstat=TN-Validation-Passed>", "TN-Validation-Failed",
			"<tel:+12155550121;verstat=TN-Validation-Failed>"},
		{"replaces verstat in odd places", "<sip:+12155550121@host;VERSTAT=x;user=phone>;verstat=y", passed,
			"<sip:+12155550121;verstat=TN-Validation-Passed@host;user=phone>"},
		{"addr-spec sip gains brackets", "sip:2155550121@host;tag=1", passed,
			"<sip:2155550121;verstat=TN-Validation-Passed@host>;tag=1"},
		{"addr-spec tel gains brackets", "tel:+12155550121;verstat=old;tag=1", passed,
			"<tel:+12155550121;verstat=TN-Validation-Passed>;tag=1"},
		{"vendor suffix", "<tel:+12155550121>", "TN-Validation-Passed-A",
			"<tel:+12155550121;verstat=TN-Validation-Passed-A>"},
		{"PAI list: each URI", "<sip:+12155550121;verstat=x@host;user=phone>, <tel:+12155550121>;p=1", passed,
			"<sip:+12155550121;verstat=TN-Validation-Passed@host;user=phone>, <tel:+12155550121;verstat=TN-Validation-Passed>;p=1"},
		{"PAI list: addr-specs", "sip:+12155550121@host,tel:+12155550121", passed,
			"<sip:+12155550121;verstat=TN-Validation-Passed@host>,<tel:+12155550121;verstat=TN-Validation-Passed>"},
		{"unquoted comma in display name", "Smith, John <sip:+12155550121@host>;tag=1", passed,
			"Smith, John <sip:+12155550121;verstat=TN-Validation-Passed@host>;tag=1"},
		{"quoted comma in header param", `<sip:+12155550121@host>;x="a,<b>;verstat=c";verstat=d`, passed,
			`<sip:+12155550121;verstat=TN-Validation-Passed@host>;x="a,<b>;verstat=c"`},
		{"uri headers untouched", "<sip:+12155550121@host;verstat=a?X=y;verstat=b>", passed,
			"<sip:+12155550121;verstat=TN-Validation-Passed@host?X=y;verstat=b>"},
		{"unknown param like verstat kept (fuzz)", "tel:0;verstAt&0", passed,
			"<tel:0;verstat=TN-Validation-Passed>;verstAt&0"},
		{"no user part: stripped only", "<sip:host;verstat=x>", passed, "<sip:host>"},
		{"unparseable: stripped only", "<sip:1@host;verstat=x", passed, "<sip:1@host"},
		{"bad verstat value: stripped only", "<tel:+12155550121;verstat=x>", "a;b", "<tel:+12155550121>"},
		{"empty verstat value: stripped only", "<tel:+12155550121>", "", "<tel:+12155550121>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := AddVerstat(tc.value, tc.v)
			if got != tc.want {
				t.Fatalf("AddVerstat(%q, %q)\n got %q\nwant %q", tc.value, tc.v, got, tc.want)
			}
			want, err1 := FromHeader(tc.value, NANP())
			gotTN, err2 := FromHeader(got, NANP())
			if (err1 == nil) != (err2 == nil) || gotTN != want {
				t.Errorf("TN changed: %q (%v) became %q (%v)", want, err1, gotTN, err2)
			}
		})
	}
}

func TestStripVerstat(t *testing.T) {
	cases := []struct{ in, want string }{
		{"<sip:+12155550121@host>", "<sip:+12155550121@host>"},
		{"<sip:+12155550121;verstat=TN-Validation-Passed@host;user=phone>", "<sip:+12155550121@host;user=phone>"},
		{"<sip:+12155550121;npdi;verstat=x;rn=1@host>", "<sip:+12155550121;npdi;rn=1@host>"},
		{"<tel:+12155550121;verstat=x>;tag=1", "<tel:+12155550121>;tag=1"},
		{"<sip:1@h;verstat=x>", "<sip:1@h>"},
		{"<sip:1@h>;verstat=x;tag=2", "<sip:1@h>;tag=2"},
		{"<sip:1@h> ; verstat = \"a;b\" ;tag=2", "<sip:1@h> ;tag=2"},
		{"<sip:1;VerStat=x@h>", "<sip:1@h>"},
		{"<sip:1;verstat@h>", "<sip:1@h>"},
		{"<sip:1;verstat=a;verstat=b@h>", "<sip:1@h>"},
		{"<sip:1;verstatx=a@h>", "<sip:1;verstatx=a@h>"},
		{`"x;verstat=y" <sip:1@h>`, `"x;verstat=y" <sip:1@h>`},
		{"<sip:1@h>;verstat=\"unterminated", "<sip:1@h>"},
		{"<sip:1;verstat=x@h>, <tel:2;verstat=y>", "<sip:1@h>, <tel:2>"},
		{"<sip:1;verstat=x@h, garbage;verstat=y", "<sip:1, garbage"},
		{"garbage;verstat=y;a=b", "garbage;a=b"},
	}
	for _, tc := range cases {
		if got := StripVerstat(tc.in); got != tc.want {
			t.Errorf("StripVerstat(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func BenchmarkAddVerstat(b *testing.B) {
	v := `"Alice" <sip:+12155550121@example.com;user=phone>;tag=x`
	b.ReportAllocs()
	for b.Loop() {
		AddVerstat(v, passed)
	}
}
