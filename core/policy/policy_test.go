package policy

import (
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

func TestDecide(t *testing.T) {
	p, err := New(Options{
		Customers: []Customer{
			{Name: "acme", OrigID: "11111111-2222-4333-8444-555555555555",
				Numbers: []string{"12155550121", "1267555*", "13055550100-13055550199"},
				Sources: []string{"192.0.2.10", "198.51.100.0/24", "otg-acme"}},
			{Name: "globex", Numbers: []string{"14155550000"}},
		},
		Gateways: []string{"203.0.113.0/24", "carrier-in"},
		Default:  "C",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       Input
		attest   stir.Attestation
		customer string
		origid   string
	}{
		{"named customer owns exact", Input{Customer: "acme", Orig: "12155550121"}, "A", "acme", "11111111-2222-4333-8444-555555555555"},
		{"named customer owns prefix", Input{Customer: "acme", Orig: "12675551234"}, "A", "acme", "11111111-2222-4333-8444-555555555555"},
		{"range low edge", Input{Customer: "acme", Orig: "13055550100"}, "A", "acme", "11111111-2222-4333-8444-555555555555"},
		{"range high edge", Input{Customer: "acme", Orig: "13055550199"}, "A", "acme", "11111111-2222-4333-8444-555555555555"},
		{"range just past", Input{Customer: "acme", Orig: "13055550200"}, "B", "acme", "11111111-2222-4333-8444-555555555555"},
		{"range longer number", Input{Customer: "acme", Orig: "130555501001"}, "B", "acme", "11111111-2222-4333-8444-555555555555"},
		{"customer by address", Input{Source: "192.0.2.10", Orig: "12155550121"}, "A", "acme", "11111111-2222-4333-8444-555555555555"},
		{"customer by address:port", Input{Source: "192.0.2.10:5060", Orig: "19995550000"}, "B", "acme", "11111111-2222-4333-8444-555555555555"},
		{"customer by cidr", Input{Source: "198.51.100.77", Orig: "12155550121"}, "A", "acme", "11111111-2222-4333-8444-555555555555"},
		{"customer by tag", Input{Source: "otg-acme", Orig: "12155550121"}, "A", "acme", "11111111-2222-4333-8444-555555555555"},
		{"other customer's number", Input{Customer: "globex", Orig: "12155550121"}, "B", "globex", ""},
		{"gateway cidr", Input{Source: "203.0.113.5", Orig: "12155550121"}, "C", "", ""},
		{"gateway tag", Input{Source: "carrier-in", Orig: "12155550121"}, "C", "", ""},
		{"unknown source default", Input{Source: "192.0.2.99", Orig: "12155550121"}, "C", "", ""},
		{"v4-mapped v6", Input{Source: "[::ffff:192.0.2.10]:5060", Orig: "12155550121"}, "A", "acme", "11111111-2222-4333-8444-555555555555"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Decide(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if d.Attest != tc.attest || d.Customer != tc.customer || d.OrigID != tc.origid {
				t.Fatalf("got %+v", d)
			}
		})
	}
}

func TestDecideRefuses(t *testing.T) {
	p, err := New(Options{Customers: []Customer{{Name: "acme"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []Input{{Source: "192.0.2.1"}, {Customer: "nobody"}, {}} {
		_, err := p.Decide(in)
		if e := stir.As(err); e == nil || e.Name != stir.ErrSignNotAllowed.Name {
			t.Fatalf("%+v: err = %v", in, err)
		}
	}
}

func TestNewRejects(t *testing.T) {
	for name, o := range map[string]Options{
		"bad default":    {Default: "D"},
		"empty name":     {Customers: []Customer{{}}},
		"duplicate":      {Customers: []Customer{{Name: "a"}, {Name: "a"}}},
		"bad number":     {Customers: []Customer{{Name: "a", Numbers: []string{"+1215"}}}},
		"bad range":      {Customers: []Customer{{Name: "a", Numbers: []string{"200-100"}}}},
		"ragged range":   {Customers: []Customer{{Name: "a", Numbers: []string{"100-1000"}}}},
		"empty source":   {Gateways: []string{""}},
		"letters prefix": {Customers: []Customer{{Name: "a", Numbers: []string{"12a*"}}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRCDPerNumber(t *testing.T) {
	cust := &RCD{Nam: "ACME Corp", Crn: "General"}
	p, err := New(Options{Customers: []Customer{
		{Name: "acme", Numbers: []string{"1202555*"}, Sources: []string{"192.0.2.10"}, RCD: cust,
			RCDNumbers: []NumberRCD{
				{Numbers: []string{"1202555*"}, RCD: RCD{Nam: "ACME DC"}},
				{Numbers: []string{"12025550100-12025550199"}, RCD: RCD{Nam: "ACME Sales", Crn: "Offer"}},
				{Numbers: []string{"12025550150"}, RCD: RCD{Nam: "ACME Front Desk"}},
				{Numbers: []string{"120255501*"}, RCD: RCD{Nam: "ACME tie, listed later"}},
				{Numbers: []string{"13035550100-13035550109", "130355501*"}, RCD: RCD{Nam: "ACME Denver"}},
			}},
		{Name: "numbers-only", RCDNumbers: []NumberRCD{{Numbers: []string{"14155550000"}, RCD: RCD{Nam: "Globex"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   Input
		nam  string // "" = nil
	}{
		{"exact beats range and prefixes", Input{Customer: "acme", Orig: "12025550150"}, "ACME Front Desk"},
		{"range (100 numbers) beats the longer prefix on a tie, listed first", Input{Customer: "acme", Orig: "12025550151"}, "ACME Sales"},
		{"short prefix", Input{Customer: "acme", Orig: "12025559999"}, "ACME DC"},
		{"range edge high", Input{Customer: "acme", Orig: "12025550199"}, "ACME Sales"},
		{"range just past: prefix", Input{Customer: "acme", Orig: "12025550200"}, "ACME DC"},
		{"one entry, narrower of its two forms", Input{Customer: "acme", Orig: "13035550105"}, "ACME Denver"},
		{"one entry, wider form", Input{Customer: "acme", Orig: "13035550155"}, "ACME Denver"},
		{"no entry: customer's rcd", Input{Customer: "acme", Orig: "19995550000"}, "ACME Corp"},
		{"no calling number: customer's rcd", Input{Customer: "acme"}, "ACME Corp"},
		{"customer by source", Input{Source: "192.0.2.10:5060", Orig: "12025550150"}, "ACME Front Desk"},
		{"no customer rcd, number listed", Input{Customer: "numbers-only", Orig: "14155550000"}, "Globex"},
		{"no customer rcd, number not listed", Input{Customer: "numbers-only", Orig: "14155550001"}, ""},
		{"unknown customer", Input{Customer: "nobody", Orig: "12025550150"}, ""},
		{"unknown source", Input{Source: "192.0.2.99", Orig: "12025550150"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := p.RCDFor(tc.in)
			got := ""
			if r != nil {
				got = r.Nam
			}
			if got != tc.nam {
				t.Fatalf("RCDFor(%+v) = %q, want %q", tc.in, got, tc.nam)
			}
		})
	}
	if r := p.RCDFor(Input{Customer: "acme", Orig: "12025550120"}); r.Crn != "Offer" {
		t.Fatalf("entry's crn: %+v", r)
	}
	if r := p.RCDFor(Input{Customer: "acme", Orig: "12025550150"}); r.Crn != "" {
		t.Fatalf("a number's entry replaces the customer's rcd whole, crn included: %+v", r)
	}
	if r := p.RCDFor(Input{Customer: "acme", Orig: "19995550000"}); r != cust {
		t.Fatalf("fallback: %+v", r)
	}
}

func TestRCDPerNumberRefused(t *testing.T) {
	for name, nr := range map[string]NumberRCD{
		"no nam":        {Numbers: []string{"12025550100"}},
		"jcd and jcl":   {Numbers: []string{"12025550100"}, RCD: RCD{Nam: "x", Jcd: "[]", Jcl: "https://a/b"}},
		"no numbers":    {RCD: RCD{Nam: "x"}},
		"bad number":    {Numbers: []string{"+1202555*"}, RCD: RCD{Nam: "x"}},
		"reverse range": {Numbers: []string{"12025550199-12025550100"}, RCD: RCD{Nam: "x"}},
	} {
		if _, err := New(Options{Customers: []Customer{{Name: "acme", RCDNumbers: []NumberRCD{nr}}}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
