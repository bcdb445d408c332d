//go:build sipgo

// The evidence behind DEPENDENCY.md: how github.com/emiago/sipgo v1.7.2
// treats requests a redirect server must answer 400. Run with
// `go test -tags sipgo -run SipgoMalformed -v ./sipredirect/`.

package sipredirect

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

func TestSipgoMalformed(t *testing.T) {
	ua, err := sipgo.NewUA()
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 302, "Moved Temporarily", nil))
	})
	port := freePort(t, "udp")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.ListenAndServe(ctx, "udp", addr) }()
	time.Sleep(200 * time.Millisecond)

	h, _ := NewHandler(Options{})
	ours, err := Listen(ServerOptions{Handler: h, Listeners: []Listener{{"udp", "127.0.0.1:0", Auto}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ours.Serve(ctx) }()
	ourAddr := strings.TrimPrefix(ours.Addrs()[0], "udp:")

	// What each peer does with each request, as observed with v1.7.2.
	cases := []struct{ name, msg, sipgo, ours string }{
		{"bad CSeq", strings.Replace(invite("g1"), "CSeq: 1 INVITE", "CSeq: x", 1), "(no answer)", "SIP/2.0 400 Malformed CSeq"},
		{"header no colon", strings.Replace(invite("g4"), "Max-Forwards: 70", "Max-Forwards 70", 1), "(no answer)", "SIP/2.0 400 Malformed Header Line"},
		{"missing Call-ID", strings.Replace(invite("g2"), "Call-ID: g2\r\n", "", 1), "SIP/2.0 302 Moved Temporarily", "SIP/2.0 400 Missing Call-ID"},
		{"SIP/3.0", strings.Replace(invite("g3"), "SIP/2.0\r\n", "SIP/3.0\r\n", 1), "SIP/3.0 302 Moved Temporarily", "SIP/2.0 400 Unsupported SIP Version"},
		{"good", invite("g5"), "SIP/2.0 302 Moved Temporarily", "SIP/2.0 302 Moved Temporarily"},
	}
	ask := func(to, msg string) string {
		c, err := net.Dial("udp", to)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write([]byte(msg))
		_ = c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			return "(no answer)"
		}
		return strings.SplitN(string(b[:n]), "\r\n", 2)[0]
	}
	for _, tc := range cases {
		// invite() asks for rport, so both answer the source port.
		msg := tc.msg
		theirs, mine := ask(addr, msg), ask(ourAddr, msg)
		t.Logf("%-16s sipgo: %-30s stirgate: %s", tc.name, theirs, mine)
		if theirs != tc.sipgo || mine != tc.ours {
			t.Errorf("%s: sipgo %q (want %q), stirgate %q (want %q)", tc.name, theirs, tc.sipgo, mine, tc.ours)
		}
	}
}
