package sipredirect

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/outcome"
)

// TestRecord: every signing and verification answer becomes one row of the
// outcome store, with the source, the profile and the listener mode; a
// failed verification keeps the x5u and orig its token named.
func TestRecord(t *testing.T) {
	now := func() time.Time { return fixedNow }
	l := newTestLab(t, now)
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := NewHandler(Options{Signer: l.signer, Verifier: l.verifier, Allow: allowTest(), Recorder: st, System: "sbc1",
		Profiles: []Profile{{Name: "sippy", Sources: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550199", Dest: []string{"12155550131"}, Attest: "A"})
	if err != nil {
		t.Fatal(err)
	}
	answer(t, h, Auto, invite("c-sign"), srcCustomer)
	answer(t, h, Sign, invite("c-unsigned", "Identity: "+other.Identity), srcGateway)
	answer(t, h, Verify, invite("c-mismatch", "Identity: "+other.Identity), srcGateway)
	// A From with otg names the trunk, whatever address it came from.
	answer(t, h, Auto, strings.Replace(invite("c-otg", "Identity: "+other.Identity), ";tag=a1", ";otg=trunk7;tag=a1", 1), srcCustomer)
	answer(t, h, Verify, invite("c-none"), srcLoop)

	rows, err := st.Query(context.Background(), outcome.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]outcome.Outcome{}
	for _, o := range rows {
		got[o.UniqueID] = o
	}
	want := map[string]string{
		"c-sign":     "sign/signed//192.0.2.10/default/auto",
		"c-unsigned": "sign/unsigned/already_signed/198.51.100.7/sippy/sign",
		"c-mismatch": "verify/fail/orig_mismatch/198.51.100.7/sippy/verify",
		"c-otg":      "verify/fail/orig_mismatch/trunk7/default/auto",
		"c-none":     "verify/none/no_identity/127.0.0.1/default/verify",
	}
	if len(rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rows), len(want))
	}
	for id, w := range want {
		o := got[id]
		if g := o.Kind + "/" + o.Result + "/" + o.ErrorName + "/" + o.Peer + "/" + o.Profile + "/" + o.Mode; g != w {
			t.Errorf("%s: %s, want %s", id, g, w)
		}
		if o.System != "sbc1" || o.Source != outcome.SourceSIP {
			t.Errorf("%s: system %q source %q", id, o.System, o.Source)
		}
	}
	if o := got["c-sign"]; o.Orig != "12155550121" || o.Dest != "12155550131" || o.Attest == "" || o.Direction != "outbound" {
		t.Errorf("signed: %+v", o)
	}
	if o := got["c-mismatch"]; o.Orig != "12155550199" || o.X5U == "" || o.SIPCode != 438 || o.Direction != "inbound" {
		t.Errorf("failed verification without what was read: %+v", o)
	}
}

// TestRecordExtensions: a verified diverted call records its diverting
// numbers, a verified call with rich call data its nam and crn; a failed
// one neither.
func TestRecordExtensions(t *testing.T) {
	now := func() time.Time { return fixedNow }
	l := newTestLab(t, now)
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := NewHandler(Options{Signer: l.signer, Verifier: l.verifier, Allow: allowTest(), Recorder: st, System: "sbc1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Dialled 12155550100, diverted to 12155550131, the Request-URI.
	shaken, err := l.signer.Sign(ctx, core.SignRequest{Orig: "12155550121", Dest: []string{"12155550100"}, Attest: "A"})
	if err != nil {
		t.Fatal(err)
	}
	div, err := l.signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken.Identity}, Dest: []string{"12155550131"}})
	if err != nil {
		t.Fatal(err)
	}
	rcd, err := l.signer.Sign(ctx, core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A",
		RCD: &core.RCD{Nam: "ACME Corp"}, Crn: "Delivery"})
	if err != nil {
		t.Fatal(err)
	}
	answer(t, h, Verify, invite("c-div", "Identity: "+shaken.Identity, "Identity: "+div.Identity), srcGateway)
	answer(t, h, Verify, invite("c-rcd", "Identity: "+rcd.Identity), srcGateway)
	answer(t, h, Verify, strings.Replace(invite("c-rcd-fail", "Identity: "+rcd.Identity), "+12155550121@", "+12155550199@", 1), srcGateway)

	rows, err := st.Query(ctx, outcome.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range rows {
		got[o.UniqueID] = o.Result + "/" + o.Div + "/" + o.RCDNam + "/" + o.RCDCrn
	}
	for id, w := range map[string]string{
		"c-div":      "pass/12155550100//",
		"c-rcd":      "pass//ACME Corp/Delivery",
		"c-rcd-fail": "fail///",
	} {
		if got[id] != w {
			t.Errorf("%s: %q, want %q", id, got[id], w)
		}
	}
}
