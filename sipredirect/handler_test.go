package sipredirect

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/disposition"
	"github.com/stirgate/stirgate/core/stir"
)

// answer runs raw through parse, Handle and encode, as the server does.
func answer(t *testing.T, h *Handler, mode Mode, raw string, src netip.AddrPort) (response, bool) {
	t.Helper()
	r, err := ParseRequest([]byte(raw), Limits{}, true)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	a := h.Handle(context.Background(), mode, r, src)
	if a == nil {
		return response{}, false
	}
	return parseResponse(t, encode(r, a, src)), true
}

// checkIdentity verifies an answer's Identity against the request numbers.
func checkIdentity(t *testing.T, l *testLab, ident, date string) *stir.Result {
	t.Helper()
	return l.verifier.Verify(context.Background(), core.VerifyRequest{
		Identity: []string{ident},
		From:     "<sip:+12155550121@pbx.example;user=phone>",
		To:       "<sip:+12155550131@redirect.example;user=phone>",
		Date:     date,
	})
}

func TestSign(t *testing.T) {
	now := func() time.Time { return fixedNow }
	l := newTestLab(t, now)
	base := Options{Signer: l.signer, Verifier: l.verifier, Allow: allowTest()}
	tests := []struct {
		name     string
		opts     func(*Options)
		mode     Mode
		src      netip.AddrPort
		extra    []string
		code     int
		identHdr string // "" = no signature expected
		dateHdr  string
		attest   stir.Attestation
		warning  string
		contact  string
		more     func(t *testing.T, r response)
	}{
		{name: "customer owns number", src: srcCustomer, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "A"},
		{name: "gateway source", src: srcGateway, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "C"},
		{name: "default for unknown source", src: srcLoop, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "C"},
		{name: "empty Identity marker", src: srcCustomer, extra: []string{"Identity:"}, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "A"},
		{name: "compact empty y marker", src: srcCustomer, extra: []string{"y:"}, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "A"},
		{name: "attestation field lowers", src: srcCustomer, extra: []string{"Attestation: b"}, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "B"},
		// The field may only lower what the policy grants: a gateway asking
		// A is signed C, the policy's level for it.
		{name: "attestation field cannot raise", src: srcGateway, extra: []string{"Attestation: A"}, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "C"},
		{name: "attestation field ignored", opts: func(o *Options) { o.AttestationHeader = "-" }, src: srcGateway, extra: []string{"Attestation: A"}, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "C"},
		{name: "custom attestation field", opts: func(o *Options) { o.AttestationHeader = "X-Attest" }, src: srcCustomer, extra: []string{"X-Attest: C"}, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "C"},
		{name: "X-Identity marker", src: srcCustomer, extra: []string{"X-Identity:"}, code: 302, identHdr: "X-Identity", dateHdr: "X-Date", attest: "A"},
		{name: "profile by source", opts: func(o *Options) {
			o.Profiles = []Profile{{Name: "sippy", Sources: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, IdentityHeader: "X-Identity", DateHeader: "X-Date"}}
		}, src: srcGateway, code: 302, identHdr: "X-Identity", dateHdr: "X-Date", attest: "C"},
		{name: "sign mode", mode: Sign, src: srcCustomer, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "A"},
		{name: "fresh Date becomes iat", src: srcCustomer, extra: []string{"Date: " + core.FormatDate(fixedNow.Add(-10*time.Second))}, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "A",
			more: func(t *testing.T, r response) {
				if got, want := r.get("Date"), core.FormatDate(fixedNow.Add(-10*time.Second)); got != want {
					t.Errorf("Date %q, want %q", got, want)
				}
			}},
		{name: "contact host target", opts: func(o *Options) { o.Contact = "sip:gw.example.net:5080;transport=tcp" }, src: srcCustomer, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "A",
			contact: "<sip:+12155550131@gw.example.net:5080;transport=tcp>"},
		{name: "indicator, origid and reason", opts: func(o *Options) { o.AttestationIndicator, o.OriginationID, o.Reason = true, true, true }, src: srcCustomer, code: 302, identHdr: "Identity", dateHdr: "Date", attest: "A",
			more: func(t *testing.T, r response) {
				if r.get("P-Attestation-Indicator") != "A" || r.get("P-Origination-ID") == "" {
					t.Errorf("missing indicator or origid:\n%s", r.raw)
				}
				if got := r.get("Reason"); got != `SIP;cause=302;text="Signed, attestation A"` {
					t.Errorf("Reason %q", got)
				}
			}},
		{name: "bad attestation field", src: srcCustomer, extra: []string{"Attestation: Z"}, code: 302, warning: stir.ErrSignInput.Name},
		{name: "unsigned 403 with reason", opts: func(o *Options) { o.Unsigned, o.Reason = 403, true }, src: srcCustomer, extra: []string{"Attestation: Z"}, code: 403, warning: stir.ErrSignInput.Name,
			more: func(t *testing.T, r response) {
				if r.reason != "Forbidden" || !strings.Contains(r.get("Reason"), "cause=403") {
					t.Errorf("403 answer:\n%s", r.raw)
				}
			}},
		{name: "unsigned 603", opts: func(o *Options) { o.Unsigned = 603 }, src: srcCustomer, extra: []string{"Attestation: Z"}, code: 603, warning: stir.ErrSignInput.Name},
		{name: "unsigned 404", opts: func(o *Options) { o.Unsigned = 404 }, src: srcCustomer, extra: []string{"Attestation: Z"}, code: 404, warning: stir.ErrSignInput.Name},
		{name: "unsigned 503 with reason", opts: func(o *Options) { o.Unsigned, o.Reason = 503, true }, src: srcCustomer, extra: []string{"Attestation: Z"}, code: 503, warning: stir.ErrSignInput.Name,
			more: func(t *testing.T, r response) {
				if !strings.Contains(r.get("Reason"), "cause=503") {
					t.Errorf("Reason %q", r.get("Reason"))
				}
			}},
		{name: "stale Date refused", src: srcCustomer, extra: []string{"Date: " + core.FormatDate(fixedNow.Add(-time.Hour))}, code: 302, warning: stir.ErrSignDate.Name},
		{name: "already signed in sign mode", mode: Sign, src: srcCustomer, extra: []string{"Identity: abc.def.ghi;info=<https://x.example/a.pem>"}, code: 302, warning: stir.ErrAlreadySigned.Name},
		{name: "no signer", opts: func(o *Options) { o.Signer = nil }, src: srcCustomer, code: 302, warning: stir.ErrSignNotAllowed.Name},
		{name: "outside allow-list", src: srcOutside, code: 403},
		{name: "loopback only by default", opts: func(o *Options) { o.Allow = nil }, src: srcCustomer, code: 403},
		{name: "in-dialog INVITE", src: srcCustomer, extra: []string{"X-Ignore: 1"}, code: 481,
			more: func(t *testing.T, r response) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			if tc.opts != nil {
				tc.opts(&o)
			}
			h, err := NewHandler(o)
			if err != nil {
				t.Fatal(err)
			}
			raw := invite("call-"+strings.ReplaceAll(tc.name, " ", "-"), tc.extra...)
			if tc.code == 481 {
				raw = strings.Replace(raw, "user=phone>\r\nCall-ID", "user=phone>;tag=b2\r\nCall-ID", 1)
			}
			mode := tc.mode
			if mode == "" {
				mode = Auto
			}
			r, ok := answer(t, h, mode, raw, tc.src)
			if !ok {
				t.Fatal("no answer")
			}
			if r.code != tc.code {
				t.Fatalf("code %d, want %d:\n%s", r.code, tc.code, r.raw)
			}
			if !strings.Contains(r.get("To"), ";tag=") {
				t.Errorf("To without tag: %q", r.get("To"))
			}
			if tc.identHdr != "" {
				for _, other := range []string{"Identity", "X-Identity"} {
					if other != tc.identHdr && r.get(other) != "" {
						t.Errorf("unexpected %s field", other)
					}
				}
				res := checkIdentity(t, l, r.get(tc.identHdr), r.get(tc.dateHdr))
				if res.Result != stir.Pass {
					t.Fatalf("signed Identity does not verify: %+v\n%s", res, r.raw)
				}
				if res.Attest != tc.attest {
					t.Errorf("attest %s, want %s", res.Attest, tc.attest)
				}
			} else if r.get("Identity") != "" || r.get("X-Identity") != "" {
				t.Errorf("unsigned answer carries an Identity:\n%s", r.raw)
			}
			if tc.warning != "" {
				if got, want := r.get("Warning"), `399 stirgate "`+tc.warning+`"`; got != want {
					t.Errorf("Warning %q, want %q", got, want)
				}
			}
			if tc.code == 302 {
				want := tc.contact
				if want == "" {
					want = "<sip:+12155550131@redirect.example;user=phone>"
				}
				if got := r.get("Contact"); got != want {
					t.Errorf("Contact %q, want %q", got, want)
				}
			}
			if tc.more != nil {
				tc.more(t, r)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	now := func() time.Time { return fixedNow }
	l := newTestLab(t, now)
	signed, err := l.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A", Trusted: true, OrigID: "5c3f6e7a-1111-4222-8333-944445555666"})
	if err != nil {
		t.Fatal(err)
	}
	ident := "Identity: " + signed.Identity
	// A diverted call (RFC 8946): the forwarding network's div PASSporT
	// beside the SHAKEN one, the Request-URI the new target.
	div, err := l.signer.SignDiv(context.Background(), core.DivRequest{Identity: []string{signed.Identity}, Dest: []string{"12155550141"}})
	if err != nil {
		t.Fatal(err)
	}
	retarget := func(s string) string {
		return strings.Replace(s, "INVITE sip:+12155550131@", "INVITE sip:+12155550141@", 1)
	}
	// A call with rich call data (RFC 9795).
	branded, err := l.signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A",
		RCD: &core.RCD{Nam: "ACME Corp", Jcd: `["vcard",[["fn",{},"text","ACME Corp"]]]`}, Crn: "Your order"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    func(*Options)
		mode    Mode
		extra   []string
		mutate  func(string) string
		code    int
		verstat string
		reason  string
		more    func(t *testing.T, r response)
	}{
		{name: "pass", extra: []string{ident}, code: 302, verstat: "TN-Validation-Passed"},
		{name: "pass with indicator and origid", opts: func(o *Options) { o.AttestationIndicator, o.OriginationID = true, true }, extra: []string{ident}, code: 302, verstat: "TN-Validation-Passed",
			more: func(t *testing.T, r response) {
				if r.get("P-Attestation-Indicator") != "A" || r.get("P-Origination-ID") != "5c3f6e7a-1111-4222-8333-944445555666" {
					t.Errorf("indicator/origid missing:\n%s", r.raw)
				}
			}},
		{name: "pass, foreign verstat replaced", extra: []string{ident, "P-Asserted-Identity: <sip:+12155550121;verstat=TN-Validation-Passed@pbx.example;user=phone>"},
			mutate: func(s string) string {
				return strings.Replace(s, "<sip:+12155550121@pbx", "<sip:+12155550121;verstat=TN-Validation-Passed@pbx", 1)
			}, code: 302, verstat: "TN-Validation-Passed"},
		{name: "fail relaxed", extra: []string{ident}, mutate: func(s string) string {
			return strings.ReplaceAll(s, "+12155550131@redirect", "+12155550199@redirect")
		}, code: 302, verstat: "TN-Validation-Failed", reason: `SIP;cause=438;text="Invalid Identity Header"`},
		{name: "fail strict", opts: func(o *Options) { o.Disposition = disposition.Options{Mode: disposition.Strict} }, extra: []string{ident}, mutate: func(s string) string {
			return strings.ReplaceAll(s, "+12155550131@redirect", "+12155550199@redirect")
		}, code: 438},
		{name: "garbage identity strict", opts: func(o *Options) { o.Disposition = disposition.Options{Mode: disposition.Strict} }, extra: []string{"Identity: a.b;info=<https://x.example/a.pem>"}, code: 438},
		{name: "stale strict", opts: func(o *Options) { o.Disposition = disposition.Options{Mode: disposition.Strict} }, extra: []string{ident, "Date: " + core.FormatDate(fixedNow.Add(-5*time.Minute))}, code: 403},
		{name: "none on verify listener", mode: Verify, code: 302, verstat: "No-TN-Validation"},
		{name: "none required strict", opts: func(o *Options) {
			o.RequireIdentity = true
			o.Disposition = disposition.Options{Mode: disposition.Strict}
		}, mode: Verify, code: 428},
		{name: "X-Identity by profile", opts: func(o *Options) {
			o.Profiles = []Profile{{Name: "sippy", Sources: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, IdentityHeader: "X-Identity", DateHeader: "X-Date"}}
		}, extra: []string{"X-Identity: " + signed.Identity}, code: 302, verstat: "TN-Validation-Passed"},
		{name: "no verifier", opts: func(o *Options) { o.Verifier = nil }, extra: []string{ident}, code: 503},
		{name: "diverted call", extra: []string{"Identity: " + div.Identity, ident}, mutate: retarget, code: 302, verstat: "TN-Validation-Passed"},
		{name: "diverted call, target not diverted to", extra: []string{"Identity: " + div.Identity, ident}, code: 302, verstat: "TN-Validation-Failed",
			reason: `SIP;cause=438;text="Invalid Identity Header"`},
		{name: "rich call data", extra: []string{"Identity: " + branded.Identity}, code: 302, verstat: "TN-Validation-Passed",
			more: func(t *testing.T, r response) {
				if ci := r.get("Call-Info"); !strings.HasPrefix(ci, "<data:application/json;base64,") || !strings.HasSuffix(ci, `;purpose=jcard;call-reason="Your order";verified`) {
					t.Errorf("Call-Info %q:\n%s", ci, r.raw)
				}
			}},
		{name: "no Call-Info without rcd", extra: []string{ident}, code: 302, verstat: "TN-Validation-Passed",
			more: func(t *testing.T, r response) {
				if ci := r.get("Call-Info"); ci != "" {
					t.Errorf("Call-Info %q", ci)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Signer: l.signer, Verifier: l.verifier, Allow: allowTest()}
			if tc.opts != nil {
				tc.opts(&o)
			}
			h, err := NewHandler(o)
			if err != nil {
				t.Fatal(err)
			}
			raw := invite("v-"+strings.ReplaceAll(tc.name, " ", "-"), tc.extra...)
			if tc.mutate != nil {
				raw = tc.mutate(raw)
			}
			mode := tc.mode
			if mode == "" {
				mode = Auto
			}
			r, ok := answer(t, h, mode, raw, srcCustomer)
			if !ok {
				t.Fatal("no answer")
			}
			if r.code != tc.code {
				t.Fatalf("code %d, want %d:\n%s", r.code, tc.code, r.raw)
			}
			if tc.code != 302 {
				if r.get("Contact") != "" || r.get("Warning") == "" {
					t.Errorf("rejection should carry a Warning and no Contact:\n%s", r.raw)
				}
				return
			}
			vs := ";verstat=" + tc.verstat + "@"
			for _, f := range []string{"Contact", "From", "P-Asserted-Identity"} {
				if got := r.get(f); !strings.Contains(got, vs) || strings.Count(got, "verstat") != 1 {
					t.Errorf("%s %q lacks %q", f, got, vs)
				}
			}
			if !strings.HasSuffix(r.get("From"), ";tag=a1") {
				t.Errorf("From lost its tag: %q", r.get("From"))
			}
			if got := r.get("Reason"); got != tc.reason {
				t.Errorf("Reason %q, want %q", got, tc.reason)
			}
			if tc.more != nil {
				tc.more(t, r)
			}
		})
	}
}

func TestOtherMethods(t *testing.T) {
	h, err := NewHandler(Options{Allow: allowTest()})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(method string) string {
		s := invite("m-"+method, "Accept: application/sdp")
		s = strings.Replace(s, "INVITE sip:", method+" sip:", 1)
		return strings.Replace(s, "CSeq: 1 INVITE", "CSeq: 1 "+method, 1)
	}
	tests := []struct {
		method string
		src    netip.AddrPort
		code   int // 0 = no answer
	}{
		{"OPTIONS", srcCustomer, 200},
		{"OPTIONS", srcOutside, 403},
		{"ACK", srcCustomer, 0},
		{"ACK", srcOutside, 0},
		{"CANCEL", srcCustomer, 200},
		{"BYE", srcCustomer, 405},
		{"REGISTER", srcCustomer, 405},
	}
	for _, tc := range tests {
		t.Run(tc.method+"/"+tc.src.String(), func(t *testing.T) {
			r, ok := answer(t, h, Auto, mk(tc.method), tc.src)
			if tc.code == 0 {
				if ok {
					t.Fatalf("unexpected answer %d", r.code)
				}
				return
			}
			if !ok || r.code != tc.code {
				t.Fatalf("got %v %d, want %d", ok, r.code, tc.code)
			}
			if tc.code == 200 && tc.method == "OPTIONS" && r.get("Allow") == "" {
				t.Error("OPTIONS answer without Allow")
			}
		})
	}
}

func TestNewHandlerRejects(t *testing.T) {
	for name, o := range map[string]Options{
		"unsigned code":  {Unsigned: 486},
		"contact scheme": {Contact: "tel:+1215"},
		"attest header":  {AttestationHeader: "bad header"},
		"profile header": {Profiles: []Profile{{IdentityHeader: "X Identity"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewHandler(o); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
