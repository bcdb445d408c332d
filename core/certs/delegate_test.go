package certs

import (
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

func TestTNAuthListCovers(t *testing.T) {
	l := TNAuthList{{TN: "12155550121"}, {Range: &TNRange{Start: "12155550100", Count: 10}}}
	for tn, want := range map[string]bool{
		"12155550121": true, "12155550100": true, "12155550109": true,
		"12155550110": false, "12155550099": false, "1215555010": false, "121555501000": false, "": false,
	} {
		if got := l.Covers(tn); got != want {
			t.Errorf("Covers(%q) = %v", tn, got)
		}
	}
	if !(TNAuthList{{SPC: "1234"}}).Covers("19995550000") {
		t.Error("an SPC certificate covers every number")
	}
	// A range ending at the last number of its length does not wrap.
	if (TNAuthList{{Range: &TNRange{Start: "99", Count: 5}}}).Covers("100") {
		t.Error("range spilled into longer numbers")
	}
}

func TestTNAuthListEncompasses(t *testing.T) {
	parent := TNAuthList{{Range: &TNRange{Start: "12155550100", Count: 100}}, {TN: "13105550000"}}
	for _, tc := range []struct {
		name  string
		child TNAuthList
		want  bool
	}{
		{"TN inside", TNAuthList{{TN: "12155550150"}}, true},
		{"single TN", TNAuthList{{TN: "13105550000"}}, true},
		{"subrange", TNAuthList{{Range: &TNRange{Start: "12155550110", Count: 90}}}, true},
		{"range one past", TNAuthList{{Range: &TNRange{Start: "12155550110", Count: 91}}}, false},
		{"TN outside", TNAuthList{{TN: "12155550200"}}, false},
		{"SPC not in parent", TNAuthList{{SPC: "1234"}}, false},
		{"range across entries", TNAuthList{{Range: &TNRange{Start: "12155550199", Count: 2}}}, false},
	} {
		if got := parent.Encompasses(tc.child); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	spc := TNAuthList{{SPC: "1234"}}
	if !spc.Encompasses(TNAuthList{{TN: "12155550100"}}) || !spc.Encompasses(TNAuthList{{SPC: "1234"}}) || spc.Encompasses(TNAuthList{{SPC: "9999"}}) {
		t.Error("SPC parent")
	}
}

func TestClaimConstraintsRoundTrip(t *testing.T) {
	c := ClaimConstraints{
		MustInclude:     []string{"attest"},
		PermittedValues: []PermittedValues{{Claim: "attest", Values: []string{"A", "B"}}},
		MustExclude:     []string{"rcd"},
	}
	der := MarshalClaimConstraints(c)
	got, err := ParseClaimConstraints(der, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.MustInclude) != 1 || got.MustInclude[0] != "attest" || len(got.PermittedValues) != 1 ||
		got.PermittedValues[0].Values[1] != "B" || got.MustExclude[0] != "rcd" {
		t.Fatalf("%+v", got)
	}
	if _, err := ParseClaimConstraints(der, false); err == nil {
		t.Fatal("mustExclude accepted in the RFC 8226 extension")
	}
	claims := map[string]string{"attest": "C"}
	get := func(n string) (string, bool) { v, ok := claims[n]; return v, ok }
	if e := stir.As(got.Check(get)); e == nil || e.Name != stir.ErrClaimConstraint.Name {
		t.Fatalf("attest C passed: %v", e)
	}
	claims["attest"] = "A"
	if err := got.Check(get); err != nil {
		t.Fatal(err)
	}
	claims["rcd"] = "{}"
	if got.Check(get) == nil {
		t.Fatal("excluded claim passed")
	}
	for _, bad := range [][]byte{nil, {0x30, 0x00}, append(der, 0), {0x30, 0x03, 0xa0, 0x01, 0x30}} {
		if _, err := ParseClaimConstraints(bad, true); stir.As(err) == nil {
			t.Errorf("%x: %v", bad, err)
		}
	}
}

func FuzzClaimConstraints(f *testing.F) {
	f.Add(MarshalClaimConstraints(ClaimConstraints{MustInclude: []string{"attest"}, MustExclude: []string{"rcd"}}))
	f.Add(MarshalClaimConstraints(ClaimConstraints{PermittedValues: []PermittedValues{{Claim: "attest", Values: []string{"A"}}}}))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := ParseClaimConstraints(der, true)
		if err != nil {
			if stir.As(err) == nil {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		_ = c.Check(func(string) (string, bool) { return "", true })
		again, err := ParseClaimConstraints(MarshalClaimConstraints(*c), true)
		if err != nil || len(again.MustInclude) != len(c.MustInclude) || len(again.PermittedValues) != len(c.PermittedValues) || len(again.MustExclude) != len(c.MustExclude) {
			t.Fatalf("re-encoding differs: %v %+v %+v", err, c, again)
		}
	})
}
