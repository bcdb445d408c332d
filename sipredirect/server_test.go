package sipredirect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/internal/testlog"
)

// startServer runs a Server with UDP and TCP listeners on loopback.
func startServer(t *testing.T, o Options, mode Mode) (*Server, string, string, *atomic.Int64) {
	t.Helper()
	var signs atomic.Int64
	o.Observe = func(op string, d time.Duration, outcome, errName string) {
		if op == "sign" {
			signs.Add(1)
		}
	}
	h, err := NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(ServerOptions{
		Handler:   h,
		Listeners: []Listener{{"udp", "127.0.0.1:0", mode}, {"tcp", "127.0.0.1:0", mode}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	addrs := s.Addrs()
	return s, strings.TrimPrefix(addrs[0], "udp:"), strings.TrimPrefix(addrs[1], "tcp:"), &signs
}

func udpExchange(t *testing.T, c net.Conn, msg string, wait time.Duration) []byte {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65536)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestServerUDP(t *testing.T) {
	l := newTestLab(t, time.Now)
	_, udp, _, signs := startServer(t, Options{Signer: l.signer, Verifier: l.verifier}, Auto)
	c, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("retransmission gets the same answer", func(t *testing.T) {
		msg := invite("udp-retrans")
		first := udpExchange(t, c, msg, 2*time.Second)
		second := udpExchange(t, c, msg, 2*time.Second)
		if first == nil || string(first) != string(second) {
			t.Fatalf("answers differ:\n%s\n---\n%s", first, second)
		}
		if r := parseResponse(t, first); r.code != 302 || r.get("Identity") == "" {
			t.Fatalf("answer:\n%s", first)
		}
		if n := signs.Load(); n != 1 {
			t.Fatalf("%d signatures for one transaction", n)
		}
		// The ACK is absorbed.
		ack := strings.Replace(strings.Replace(msg, "INVITE sip", "ACK sip", 1), "1 INVITE", "1 ACK", 1)
		if b := udpExchange(t, c, ack, 200*time.Millisecond); b != nil {
			t.Fatalf("ACK answered: %s", b)
		}
	})
	t.Run("new transaction signs again", func(t *testing.T) {
		if b := udpExchange(t, c, invite("udp-second"), 2*time.Second); b == nil || parseResponse(t, b).code != 302 {
			t.Fatalf("answer: %s", b)
		}
		if n := signs.Load(); n != 2 {
			t.Fatalf("%d signatures, want 2", n)
		}
	})
	t.Run("malformed gets 400 with a reason", func(t *testing.T) {
		b := udpExchange(t, c, strings.Replace(invite("udp-bad"), "CSeq: 1 INVITE", "CSeq: x", 1), 2*time.Second)
		if b == nil {
			t.Fatal("no answer")
		}
		if r := parseResponse(t, b); r.code != 400 || r.reason != "Malformed CSeq" {
			t.Fatalf("answer %d %q", r.code, r.reason)
		}
	})
	t.Run("without rport the answer goes to the Via port", func(t *testing.T) {
		listen, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer listen.Close()
		port := listen.LocalAddr().(*net.UDPAddr).Port
		msg := strings.Replace(invite("udp-via"), "192.0.2.10:5060;rport;", fmt.Sprintf("127.0.0.1:%d;", port), 1)
		if b := udpExchange(t, c, msg, 300*time.Millisecond); b != nil {
			t.Fatalf("answer went to the source port: %s", b)
		}
		_ = listen.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 65536)
		n, _, err := listen.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no answer at the Via port: %v", err)
		}
		if r := parseResponse(t, buf[:n]); r.code != 302 || r.get("Call-ID") != "udp-via" {
			t.Fatalf("answer:\n%s", r.raw)
		}
	})
	t.Run("garbage and keep-alives are dropped", func(t *testing.T) {
		for _, g := range []string{"\r\n\r\n", "hello\r\n\r\n", "SIP/2.0 200 OK\r\n\r\n", "\x00\x01\x02"} {
			if b := udpExchange(t, c, g, 150*time.Millisecond); b != nil {
				t.Fatalf("answered %q with %s", g, b)
			}
		}
		// Still alive.
		if b := udpExchange(t, c, strings.Replace(strings.Replace(invite("udp-opt"), "INVITE sip", "OPTIONS sip", 1), "1 INVITE", "1 OPTIONS", 1), 2*time.Second); b == nil || parseResponse(t, b).code != 200 {
			t.Fatalf("OPTIONS after garbage: %s", b)
		}
	})
}

func TestServerTCP(t *testing.T) {
	l := newTestLab(t, time.Now)
	_, _, tcp, _ := startServer(t, Options{Signer: l.signer, Verifier: l.verifier}, Sign)
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	read := func() response {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		msg, err := readStream(br, Limits{}.withDefaults(), func([]byte, *Request) {})
		if err != nil {
			t.Fatal(err)
		}
		return parseResponse(t, msg)
	}
	// A keep-alive, then two requests in one write (pipelined).
	if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	pong := make([]byte, 2)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(br, pong); err != nil || string(pong) != "\r\n" {
		t.Fatalf("keep-alive answer %q %v", pong, err)
	}
	body := "v=0\r\n"
	withBody := strings.Replace(invite("tcp-2"), "Content-Length: 0\r\n\r\n", "Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\n"+body, 1)
	if _, err := c.Write([]byte(invite("tcp-1") + withBody)); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for i := 0; i < 2; i++ {
		r := read()
		got[r.get("Call-ID")] = r.code
		if r.get("Identity") == "" {
			t.Errorf("no Identity:\n%s", r.raw)
		}
	}
	if got["tcp-1"] != 302 || got["tcp-2"] != 302 {
		t.Fatalf("answers %v", got)
	}
}

func TestTxCache(t *testing.T) {
	c := newTxCache(time.Second, 2)
	now := time.Unix(1000, 0)
	if _, first := c.begin("a", now); !first {
		t.Fatal("first claim refused")
	}
	if resp, first := c.begin("a", now); first || resp != nil {
		t.Fatal("pending retransmission should get (nil, false)")
	}
	c.finish("a", []byte("A"))
	if resp, first := c.begin("a", now); first || string(resp) != "A" {
		t.Fatalf("cached answer %q %v", resp, first)
	}
	c.begin("b", now)
	if _, first := c.begin("c", now); !first || c.len() != 2 {
		t.Fatalf("full cache must answer without remembering (len %d)", c.len())
	}
	if _, first := c.begin("a", now.Add(time.Second)); !first {
		t.Fatal("expired entry still matched")
	}
}

// TestServerRetransmissionWhileWorking: a retransmission that arrives while
// the first copy is still being verified (a slow x5u host) gets 100 Trying,
// the verification runs once, and later copies get the final answer.
// slowVerify returns a verifier whose x5u host takes 600 ms, and an
// Identity to verify through it.
func slowVerify(t *testing.T) (*core.Verifier, string, *atomic.Int64) {
	t.Helper()
	l := newTestLab(t, time.Now)
	var fetches atomic.Int64
	slow := testlog.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		time.Sleep(600 * time.Millisecond)
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		_, _ = w.Write(l.lab.ChainPEM())
	}))
	t.Cleanup(slow.Close)
	cred, err := l.lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: slow.URL + "/sp.pem", Numbers: tn.NANP()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := core.NewVerifier(core.VerifierOptions{
		Roots:   l.lab.Roots(),
		Fetch:   x5u.Options[*certs.Credential]{Policy: x5u.Policy{AllowHTTP: true, LabHosts: []string{strings.TrimPrefix(slow.URL, "http://")}}},
		Numbers: tn.NANP(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	res, err := signer.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A"})
	if err != nil {
		t.Fatal(err)
	}
	return v, res.Identity, &fetches
}

// TestServerRetransmissionWhileWorking: a retransmission that arrives while
// the first copy is still being verified (a slow x5u host) gets 100 Trying,
// the verification runs once, and later copies get the final answer.
func TestServerRetransmissionWhileWorking(t *testing.T) {
	v, ident, fetches := slowVerify(t)
	var verifies atomic.Int64
	h, err := NewHandler(Options{Verifier: v, Observe: func(op string, _ time.Duration, outcome, _ string) {
		if op == "verify" {
			verifies.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(ServerOptions{Handler: h, Listeners: []Listener{{"udp", "127.0.0.1:0", Auto}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx) }()
	msg := invite("slow-1", "Identity: "+ident)
	c, err := net.Dial("udp", strings.TrimPrefix(s.Addrs()[0], "udp:"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	// The retransmission: answered 100 at once, while the fetch runs.
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	var codes []int
	buf := make([]byte, 65536)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for len(codes) < 2 {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %v: %v", codes, err)
		}
		r := parseResponse(t, buf[:n])
		codes = append(codes, r.code)
		if r.code == 302 && !strings.Contains(r.get("From"), "verstat=TN-Validation-Passed") {
			t.Fatalf("final answer:\n%s", r.raw)
		}
	}
	if codes[0] != 100 || codes[1] != 302 {
		t.Fatalf("answers %v, want [100 302]", codes)
	}
	final := udpExchange(t, c, msg, 2*time.Second)
	if r := parseResponse(t, final); r.code != 302 {
		t.Fatalf("late retransmission: %d", r.code)
	}
	if n, f := verifies.Load(), fetches.Load(); n != 1 || f != 1 {
		t.Fatalf("%d verifications and %d fetches for one transaction", n, f)
	}
}

// TestServerOverload: beyond MaxInflight an INVITE is answered 503 at once.
func TestServerOverload(t *testing.T) {
	v, ident, _ := slowVerify(t)
	h, err := NewHandler(Options{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(ServerOptions{Handler: h, MaxInflight: 1, Listeners: []Listener{{"udp", "127.0.0.1:0", Auto}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx) }()
	c, err := net.Dial("udp", strings.TrimPrefix(s.Addrs()[0], "udp:"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(invite("busy-1", "Identity: "+ident))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	b := udpExchange(t, c, invite("busy-2", "Identity: "+ident), time.Second)
	if b == nil {
		t.Fatal("no answer while busy")
	}
	if r := parseResponse(t, b); r.code != 503 || r.get("Retry-After") != "1" || r.get("Call-ID") != "busy-2" {
		t.Fatalf("busy answer:\n%s", r.raw)
	}
}

// TestServerSetHandler: a reload swaps the handler for new requests.
func TestServerSetHandler(t *testing.T) {
	s, udp, _, _ := startServer(t, Options{}, Sign)
	c, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := parseResponse(t, udpExchange(t, c, invite("swap-1"), 2*time.Second)); r.code != 302 {
		t.Fatalf("before: %d", r.code)
	}
	h, err := NewHandler(Options{Unsigned: 603})
	if err != nil {
		t.Fatal(err)
	}
	s.SetHandler(h)
	if r := parseResponse(t, udpExchange(t, c, invite("swap-2"), 2*time.Second)); r.code != 603 {
		t.Fatalf("after: %d", r.code)
	}
}

// TestServerMaxConns: a TCP connection beyond MaxConns is closed at once.
func TestServerMaxConns(t *testing.T) {
	h, err := NewHandler(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Listen(ServerOptions{Handler: h, MaxConns: 1, Listeners: []Listener{{"tcp", "127.0.0.1:0", Auto}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Serve(ctx) }()
	addr := strings.TrimPrefix(s.Addrs()[0], "tcp:")
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	// The first is served (its answer proves it was accepted first).
	if _, err := first.Write([]byte(invite("conn-1"))); err != nil {
		t.Fatal(err)
	}
	_ = first.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := readStream(bufio.NewReader(first), Limits{}.withDefaults(), func([]byte, *Request) {}); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := second.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("second connection: %v, want EOF", err)
	}
}

// TestMaybeInvite: only what may be an INVITE goes to a worker; the rest
// is answered on the reader, so a misjudged INVITE would sign there.
func TestMaybeInvite(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{invite("m-1"), true},
		{"\r\n\r\n" + invite("m-2"), true}, // keep-alive CRLFs before it
		{"ACK sip:a@b SIP/2.0\r\n\r\n", false},
		{"OPTIONS sip:a@b SIP/2.0\r\n\r\n", false},
		{"CANCEL sip:a@b SIP/2.0\r\n\r\n", false},
		{"SIP/2.0 200 OK\r\n\r\n", false},
		{"invite sip:a@b SIP/2.0\r\n\r\n", false}, // methods are case-sensitive (RFC 3261 §7.1)
		{"", false},
	} {
		if got := maybeInvite([]byte(tc.msg)); got != tc.want {
			t.Errorf("maybeInvite(%.30q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}
