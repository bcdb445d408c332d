package sipredirect

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
)

const testX5U = "https://certs.example.net/sp.pem"

// fixedNow is the clock of the unit tests.
var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type testLab struct {
	lab      *certs.Lab
	signer   *core.Signer
	verifier *core.Verifier
}

// newTestLab builds a lab PKI, a signer whose policy knows one customer
// ("acme", source 192.0.2.10 or otg "acme-trunk", owning 1215555*) and
// gateways 198.51.100.0/24, and a verifier that has the chain preloaded.
func newTestLab(t testing.TB, now func() time.Time) *testLab {
	t.Helper()
	lab, err := certs.NewLab(certs.LabOptions{SPC: "1234", Now: now()})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Options{
		Default:   "C",
		Gateways:  []string{"198.51.100.0/24"},
		Customers: []policy.Customer{{Name: "acme", Numbers: []string{"1215555*"}, Sources: []string{"192.0.2.10", "acme-trunk"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: testX5U, Numbers: tn.NANP(), Policy: pol, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	v, err := core.NewVerifier(core.VerifierOptions{
		Roots:   lab.Roots(),
		Fetch:   x5u.Options[*certs.Credential]{Offline: true, PreloadBytes: map[string][]byte{testX5U: lab.ChainPEM()}},
		Numbers: tn.NANP(),
		Now:     now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return &testLab{lab: lab, signer: s, verifier: v}
}

// invite builds an INVITE; extra lines are added before the blank line.
func invite(callID string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "INVITE sip:+12155550131@redirect.example;user=phone SIP/2.0\r\n")
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-%s\r\n", callID)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: \"Alice\" <sip:+12155550121@pbx.example;user=phone>;tag=a1\r\n")
	fmt.Fprintf(&b, "To: <sip:+12155550131@redirect.example;user=phone>\r\n")
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	fmt.Fprintf(&b, "CSeq: 1 INVITE\r\n")
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.String()
}

// response is a parsed answer, for assertions.
type response struct {
	code   int
	reason string
	fields map[string][]string // lower-case names
	raw    string
}

func (r response) get(name string) string {
	if v := r.fields[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func parseResponse(t testing.TB, b []byte) response {
	t.Helper()
	s := string(b)
	head, _, ok := strings.Cut(s, "\r\n\r\n")
	if !ok {
		t.Fatalf("response without blank line: %q", s)
	}
	lines := strings.Split(head, "\r\n")
	parts := strings.SplitN(lines[0], " ", 3)
	if len(parts) != 3 || parts[0] != "SIP/2.0" {
		t.Fatalf("bad status line %q", lines[0])
	}
	code, err := strconv.Atoi(parts[1])
	if err != nil {
		t.Fatalf("bad status code in %q", lines[0])
	}
	r := response{code: code, reason: parts[2], fields: map[string][]string{}, raw: s}
	for _, ln := range lines[1:] {
		k, v, ok := strings.Cut(ln, ":")
		if !ok {
			t.Fatalf("bad header line %q", ln)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		r.fields[k] = append(r.fields[k], strings.TrimSpace(v))
	}
	return r
}

var (
	srcCustomer = netip.MustParseAddrPort("192.0.2.10:5060")
	srcGateway  = netip.MustParseAddrPort("198.51.100.7:5060")
	srcLoop     = netip.MustParseAddrPort("127.0.0.1:5060")
	srcOutside  = netip.MustParseAddrPort("203.0.113.9:5060")
)

func allowTest() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("127.0.0.0/8"),
	}
}
