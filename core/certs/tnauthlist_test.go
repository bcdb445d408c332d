package certs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseTNAuthList(t *testing.T) {
	tests := []struct {
		name string
		der  string // hex, spaces ignored
		want TNAuthList
	}{
		// Valid: the zlint fixtures' extension values and RFC 8226 arms.
		{"zlint SPC 6628", "3008 a006 1604 36363238", TNAuthList{{SPC: "6628"}}},
		{"zlint two SPCs", "3010 a006 1604 36363238 a006 1604 36363238", TNAuthList{{SPC: "6628"}, {SPC: "6628"}}},
		{"zlint TN without SPC", "3008 a206 1604 31323334", TNAuthList{{TN: "1234"}}},
		{"range", "300f a10d 300b 1606 313231353535 0201 64", TNAuthList{{Range: &TNRange{Start: "121555", Count: 100}}}},
		{"range count needing a zero octet", "3010 a10e 300c 1606 313231353535 0202 0080", TNAuthList{{Range: &TNRange{Start: "121555", Count: 128}}}},
		{"TN with # and *", "3007 a205 1603 232a39", TNAuthList{{TN: "#*9"}}},
		{"SPC with space and punctuation", "3009 a007 1605 4120422d31", TNAuthList{{SPC: "A B-1"}}},
		{"all arms", "301b a006 1604 31323334 a205 1603 353535 a10a 3008 1603 373737 0201 02",
			TNAuthList{{SPC: "1234"}, {TN: "555"}, {Range: &TNRange{Start: "777", Count: 2}}}},

		// Invalid.
		{"zlint empty list", "3000", nil},
		{"zlint empty SPC", "3004 a002 1600", nil},
		{"empty input", "", nil},
		{"trailing bytes after list", "3008 a006 1604 36363238 00", nil},
		{"trailing bytes inside SPC tag", "3009 a007 1604 36363238 00", nil},
		{"SET instead of SEQUENCE", "3108 a006 1604 36363238", nil},
		{"implicit SPC tag", "3006 8004 36363238", nil},
		{"SPC as UTF8String", "3008 a006 0c04 36363238", nil},
		{"SPC as PrintableString", "3008 a006 1304 36363238", nil},
		{"SPC with non-IA5 byte", "3008 a006 1604 363632e8", nil},
		{"SPC with control byte", "3008 a006 1604 3636320a", nil},
		{"libstirshaken IA5String URL", "1612 687474703a2f2f6578616d706c652e636f6d", nil},
		{"TN with +", "3007 a205 1603 2b3132", nil},
		{"TN with letter", "3007 a205 1603 314131", nil},
		{"TN of 16 digits", "3014 a212 1610 31323334353637383930313233343536", nil},
		{"TN empty", "3004 a202 1600", nil},
		{"range count 1", "300f a10d 300b 1606 313231353535 0201 01", nil},
		{"range count 0", "300f a10d 300b 1606 313231353535 0201 00", nil},
		{"range count negative", "300f a10d 300b 1606 313231353535 0201 ff", nil},
		{"range count not minimal", "3010 a10e 300c 1606 313231353535 0202 0005", nil},
		{"range count huge", "3014 a112 3010 1606 313231353535 0206 010000000000", nil},
		{"range without count", "300c a10a 3008 1606 313231353535", nil},
		{"range extra element", "3012 a110 300e 1606 313231353535 0201 05 0101ff", nil},
		{"range not a sequence", "300d a10b 1606 313231353535 0201 05", nil},
		{"unknown arm", "3008 a306 1604 36363238", nil},
		{"long-form length not minimal", "3081 08 a006 1604 36363238", nil},
		{"indefinite length", "3080 a006 1604 36363238 0000", nil},
		{"length past the end", "3009 a006 1604 36363238", nil},
		{"high tag number", "3009 bf1f06 1604 36363238", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTNAuthList(unhex(t, tc.der))
			if tc.want == nil {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				if !errors.Is(err, stir.ErrCertNoTNAuth) {
					t.Fatalf("err = %v, want %s", err, stir.ErrCertNoTNAuth.Name)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			// What we accept we must re-encode byte for byte: the
			// parser admits DER only.
			der, err := MarshalTNAuthList(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(der, unhex(t, tc.der)) {
				t.Fatalf("re-encoded %x", der)
			}
		})
	}
}

func TestParseTNAuthListLimits(t *testing.T) {
	entry := unhex(t, "a006 1604 36363238")
	list := func(n int) TNAuthList {
		l := make(TNAuthList, n)
		for i := range l {
			l[i].SPC = "6628"
		}
		return l
	}
	ok64, err := MarshalTNAuthList(list(maxTNEntries))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseTNAuthList(ok64); err != nil {
		t.Fatalf("%d entries: %v", maxTNEntries, err)
	}
	tooMany := appendTLV(nil, tagSequence, bytes.Repeat(entry, maxTNEntries+1))
	if _, err := ParseTNAuthList(tooMany); !errors.Is(err, stir.ErrCertNoTNAuth) {
		t.Fatalf("%d entries: err = %v", maxTNEntries+1, err)
	}
	big := appendTLV(nil, tagSequence, appendTLV(nil, tagSPC, appendTLV(nil, tagIA5String, bytes.Repeat([]byte("a"), maxTNAuthListBytes))))
	if _, err := ParseTNAuthList(big); !errors.Is(err, stir.ErrCertNoTNAuth) {
		t.Fatalf("%d bytes: err = %v", len(big), err)
	}
	longSPC := appendTLV(nil, tagSequence, appendTLV(nil, tagSPC, appendTLV(nil, tagIA5String, bytes.Repeat([]byte("a"), maxSPCLen+1))))
	if _, err := ParseTNAuthList(longSPC); !errors.Is(err, stir.ErrCertNoTNAuth) {
		t.Fatalf("SPC of %d bytes: err = %v", maxSPCLen+1, err)
	}
}

func TestMarshalTNAuthListRefuses(t *testing.T) {
	tests := map[string]TNAuthList{
		"empty":           {},
		"no arm":          {{}},
		"two arms":        {{SPC: "1234", TN: "1"}},
		"bad TN":          {{TN: "+1"}},
		"bad SPC":         {{SPC: "a\nb"}},
		"range count 1":   {{Range: &TNRange{Start: "1", Count: 1}}},
		"range bad start": {{Range: &TNRange{Start: "", Count: 5}}},
	}
	for name, l := range tests {
		t.Run(name, func(t *testing.T) {
			if der, err := MarshalTNAuthList(l); !errors.Is(err, stir.ErrCertNoTNAuth) {
				t.Fatalf("got %x, %v; want %s", der, err, stir.ErrCertNoTNAuth.Name)
			}
		})
	}
}

func TestTNAuthListSPC(t *testing.T) {
	tests := []struct {
		l    TNAuthList
		want string
	}{
		{nil, ""},
		{TNAuthList{{TN: "1"}}, ""},
		{TNAuthList{{TN: "1"}, {SPC: "AB12"}, {SPC: "CD34"}}, "AB12"},
	}
	for _, tc := range tests {
		if got := tc.l.SPC(); got != tc.want {
			t.Errorf("%+v.SPC() = %q, want %q", tc.l, got, tc.want)
		}
	}
}

// TestParseTNAuthListAllocs pins the cost of the common case: one slice
// and one string for a single-SPC list.
func TestParseTNAuthListAllocs(t *testing.T) {
	der := unhex(t, "3008 a006 1604 36363238")
	n := testing.AllocsPerRun(100, func() {
		if _, err := ParseTNAuthList(der); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Fatalf("%v allocations per parse, want at most 2", n)
	}
}

// FuzzTNAuthList checks that the parser never panics and that whatever it
// accepts re-encodes to exactly the input (it admits DER only).
func FuzzTNAuthList(f *testing.F) {
	files, _ := filepath.Glob("testdata/zlint/*.pem")
	for _, file := range files {
		c := readCert(f, file)
		for _, e := range c.Extensions {
			if e.Id.Equal(OIDTNAuthList) {
				f.Add(e.Value)
			}
		}
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		l, err := ParseTNAuthList(der)
		if err != nil {
			if !errors.Is(err, stir.ErrCertNoTNAuth) {
				t.Fatalf("error %v is not %s", err, stir.ErrCertNoTNAuth.Name)
			}
			return
		}
		if len(l) == 0 {
			t.Fatal("accepted an empty list")
		}
		out, err := MarshalTNAuthList(l)
		if err != nil {
			t.Fatalf("accepted %x but cannot re-encode %+v: %v", der, l, err)
		}
		if !bytes.Equal(out, der) {
			t.Fatalf("accepted %x, re-encodes as %x", der, out)
		}
	})
}

func BenchmarkParseTNAuthList(b *testing.B) {
	der := unhex(b, "3008 a006 1604 36363238")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTNAuthList(der); err != nil {
			b.Fatal(err)
		}
	}
}
