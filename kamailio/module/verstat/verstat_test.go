package verstat

import (
	"strings"
	"testing"
)

// reference is the rule of verstat.c written independently: drop every
// ";" [WSP] "verstat" [WSP] "=" value, value up to ; @ > , or the end.
func reference(v string) (string, bool) {
	var b strings.Builder
	removed := false
	for i := 0; i < len(v); {
		if v[i] == ';' {
			j := i + 1
			for j < len(v) && (v[j] == ' ' || v[j] == '\t') {
				j++
			}
			if len(v)-j >= 7 && strings.EqualFold(v[j:j+7], "verstat") {
				k := j + 7
				for k < len(v) && (v[k] == ' ' || v[k] == '\t') {
					k++
				}
				if k < len(v) && v[k] == '=' {
					k++
					for k < len(v) && !strings.ContainsRune(";@>,", rune(v[k])) {
						k++
					}
					i, removed = k, true
					continue
				}
			}
		}
		b.WriteByte(v[i])
		i++
	}
	return b.String(), removed
}

func TestStrip(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"<sip:+12155550121;verstat=TN-Validation-Passed@example.net;user=phone>", "<sip:+12155550121@example.net;user=phone>"},
		{"<sip:+12155550121@example.net;user=phone>;VerStat = No-TN-Validation", "<sip:+12155550121@example.net;user=phone>"},
		{"<tel:+12155550121;verstat=x;verstat=y>;tag=1", "<tel:+12155550121>;tag=1"},
		{"<sip:a;verstatx=1@b>", "<sip:a;verstatx=1@b>"},
		{"<sip:a;verstat@b>", "<sip:a;verstat@b>"},
		{"", ""},
	} {
		got, removed := Strip(c.in)
		if got != c.want || removed != (c.in != c.want) {
			t.Errorf("Strip(%q) = %q, %v; want %q", c.in, got, removed, c.want)
		}
	}
}

// FuzzStripVerstat: any header value (network input) gives the reference's
// answer, never a longer string, and no crash.
func FuzzStripVerstat(f *testing.F) {
	for _, s := range []string{
		"<sip:+12155550121;verstat=TN-Validation-Passed@example.net;user=phone>;tag=a",
		"\"A\" <tel:+12155550121;VERSTAT=No-TN-Validation>",
		"; verstat\t=\t", ";verstat=;verstat=;", "<sip:x@y>;verstat=a,<sip:z>",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if strings.IndexByte(v, 0) >= 0 {
			return // a C string ends at NUL; Kamailio's header values never hold one here
		}
		got, removed := Strip(v)
		want, wantRemoved := reference(v)
		if got != want || removed != wantRemoved {
			t.Fatalf("Strip(%q) = %q, %v; reference %q, %v", v, got, removed, want, wantRemoved)
		}
		if len(got) > len(v) {
			t.Fatalf("Strip(%q) grew to %q", v, got)
		}
	})
}
