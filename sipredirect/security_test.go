package sipredirect

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/tn"
)

// The attack tests run on loopback, where every 127.0.0.0/8 address is the
// machine's own: the switch is 127.0.0.1, a host outside the allow-list is
// 127.0.0.2, and 127.0.0.3 is a second allowed host that is no customer.
var (
	hostSwitch   = netip.MustParseAddr("127.0.0.1")
	hostOutsider = netip.MustParseAddr("127.0.0.2")
	hostOther    = netip.MustParseAddr("127.0.0.3")
)

// drops counts the server's Dropped reports and lets a test wait for a
// count without a timer.
type drops struct {
	mu sync.Mutex
	n  map[string]int
	ch chan struct{} // signalled on every report
}

func newDrops() *drops { return &drops{n: map[string]int{}, ch: make(chan struct{}, 1)} }

func (d *drops) add(reason string) {
	d.mu.Lock()
	d.n[reason]++
	d.mu.Unlock()
	select {
	case d.ch <- struct{}{}:
	default:
	}
}

func (d *drops) get(reason string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[reason]
}

// wait returns once reason has been reported want times; it fails the test
// if ctx ends first (the bound of a broken server, not a timing margin).
func (d *drops) wait(ctx context.Context, t *testing.T, reason string, want int) {
	t.Helper()
	for d.get(reason) < want {
		select {
		case <-d.ch:
		case <-ctx.Done():
			d.mu.Lock()
			defer d.mu.Unlock()
			t.Fatalf("%d %q drops, want %d (all: %v)", d.n[reason], reason, want, d.n)
		}
	}
}

// secServer runs a Server whose signer grants the switch (127.0.0.1) A
// for its numbers and refuses unknown sources, with allow as the
// allow-list.
func secServer(t *testing.T, allow []netip.Prefix, so ServerOptions) (udp, tcp string, d *drops) {
	t.Helper()
	l := newTestLab(t, time.Now)
	cred, err := l.lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(policy.Options{
		Customers: []policy.Customer{{Name: "pbx", Numbers: []string{"1215555*"}, Sources: []string{hostSwitch.String()}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: testX5U, Numbers: tn.NANP(), Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Options{Signer: signer, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	d = newDrops()
	so.Handler = h
	so.Listeners = []Listener{{"udp", "127.0.0.1:0", Sign}, {"tcp", "127.0.0.1:0", Sign}}
	so.Dropped = d.add
	s, err := Listen(so)
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
	a := s.Addrs()
	return strings.TrimPrefix(a[0], "udp:"), strings.TrimPrefix(a[1], "tcp:"), d
}

func prefixes(addrs ...netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(a, 32))
	}
	return out
}

// udpFrom sends msg from a socket bound to src and returns the answer.
func udpFrom(t *testing.T, src netip.Addr, server, msg string) response {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: src.AsSlice()}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := udpExchange(t, c, msg, 5*time.Second)
	if b == nil {
		t.Fatalf("no answer from %s", src)
	}
	return parseResponse(t, b)
}

func dialFrom(src netip.Addr, server string) (*net.TCPConn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", server)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// tcpFrom sends msg on a new connection from src. It returns the answer,
// or ok=false when the server closed the connection without one.
func tcpFrom(t *testing.T, src netip.Addr, server, msg string) (r response, ok bool) {
	t.Helper()
	c, err := dialFrom(src, server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The write may fail when the server has already closed a refused
	// connection; the read below tells.
	_, _ = c.Write([]byte(msg))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := readStream(bufio.NewReader(c), Limits{}.withDefaults(), func([]byte, *Request) {})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection from %s neither answered nor closed", src)
		}
		return response{}, false
	}
	return parseResponse(t, b), true
}

func signed(r response) bool { return r.code == 302 && r.get("Identity") != "" }

// TestReplayFromOutsider: the switch's INVITE replayed byte for byte by a
// host outside the allow-list gets 403 (UDP) or a closed connection (TCP),
// never the cached signed 302.
func TestReplayFromOutsider(t *testing.T) {
	udp, tcp, _ := secServer(t, prefixes(hostSwitch), ServerOptions{})
	msg := invite("replay-udp")
	if r := udpFrom(t, hostSwitch, udp, msg); !signed(r) {
		t.Fatalf("switch:\n%s", r.raw)
	}
	if r := udpFrom(t, hostOutsider, udp, msg); r.code != 403 {
		t.Fatalf("outsider replaying over UDP got\n%s", r.raw)
	}

	msg = invite("replay-tcp")
	if r, ok := tcpFrom(t, hostSwitch, tcp, msg); !ok || !signed(r) {
		t.Fatalf("switch over TCP:\n%s", r.raw)
	}
	if r, ok := tcpFrom(t, hostOutsider, tcp, msg); ok {
		t.Fatalf("outsider replaying over TCP got\n%s", r.raw)
	}
	// A replay over the other transport is no retransmission either.
	if r := udpFrom(t, hostOutsider, udp, msg); r.code != 403 {
		t.Fatalf("outsider replaying a TCP branch over UDP got\n%s", r.raw)
	}
}

// TestOutsiderFirst: a branch sent first by a refused host does not
// poison the switch's own transaction.
func TestOutsiderFirst(t *testing.T) {
	udp, tcp, _ := secServer(t, prefixes(hostSwitch), ServerOptions{})
	msg := invite("poison-udp")
	if r := udpFrom(t, hostOutsider, udp, msg); r.code != 403 {
		t.Fatalf("outsider:\n%s", r.raw)
	}
	if r := udpFrom(t, hostSwitch, udp, msg); !signed(r) {
		t.Fatalf("switch after the outsider:\n%s", r.raw)
	}

	msg = invite("poison-tcp")
	if r, ok := tcpFrom(t, hostOutsider, tcp, msg); ok {
		t.Fatalf("outsider over TCP got\n%s", r.raw)
	}
	if r := udpFrom(t, hostOutsider, udp, msg); r.code != 403 {
		t.Fatalf("outsider over UDP:\n%s", r.raw)
	}
	if r, ok := tcpFrom(t, hostSwitch, tcp, msg); !ok || !signed(r) {
		t.Fatalf("switch over TCP after the outsider:\n%s", r.raw)
	}
}

// TestReplayFromOtherAllowedHost: an allowed host that the policy does not
// sign for cannot borrow the switch's signature by replaying its branch.
func TestReplayFromOtherAllowedHost(t *testing.T) {
	udp, tcp, _ := secServer(t, prefixes(hostSwitch, hostOther), ServerOptions{})
	for _, tc := range []struct {
		name string
		send func(src netip.Addr, msg string) response
	}{
		{"udp", func(src netip.Addr, msg string) response { return udpFrom(t, src, udp, msg) }},
		{"tcp", func(src netip.Addr, msg string) response {
			r, ok := tcpFrom(t, src, tcp, msg)
			if !ok {
				t.Fatalf("%s: connection closed without an answer", src)
			}
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := invite("borrow-" + tc.name)
			if r := tc.send(hostSwitch, msg); !signed(r) {
				t.Fatalf("switch:\n%s", r.raw)
			}
			r := tc.send(hostOther, msg)
			if signed(r) || !strings.Contains(r.get("Warning"), "sign_not_allowed") {
				t.Fatalf("other host got\n%s", r.raw)
			}
		})
	}
}

// holdIdle opens n connections from src and keeps them open without a
// byte. It returns them for closing; a dial error ends the test.
func holdIdle(t *testing.T, src netip.Addr, server string, n int) []*net.TCPConn {
	t.Helper()
	conns := make([]*net.TCPConn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := dialFrom(src, server)
		if err != nil {
			t.Fatalf("connection %d from %s: %v", i, src, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// TestIdleConnectionsFromOutsider: 1,100 idle connections from a host
// outside the allow-list are closed at accept, and the switch is answered.
func TestIdleConnectionsFromOutsider(t *testing.T) {
	_, tcp, d := secServer(t, prefixes(hostSwitch), ServerOptions{})
	const n = 1100
	holdIdle(t, hostOutsider, tcp, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.wait(ctx, t, "not_allowed", n)
	if r, ok := tcpFrom(t, hostSwitch, tcp, invite("idle-outsider")); !ok || !signed(r) {
		t.Fatalf("switch behind %d idle connections: %v\n%s", n, ok, r.raw)
	}
}

// TestIdleConnectionsFromAllowedHost: an allowed host is held to its share
// of connections, so that its 1,100 idle ones do not lock the switch out.
func TestIdleConnectionsFromAllowedHost(t *testing.T) {
	const perSource, n = 8, 1100
	_, tcp, d := secServer(t, prefixes(hostSwitch, hostOther), ServerOptions{
		MaxConnsPerSource:   perSource,
		FirstMessageTimeout: time.Hour, // only the per-source bound closes them here
	})
	held := holdIdle(t, hostOther, tcp, n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.wait(ctx, t, "connections_per_source", n-perSource)
	if r, ok := tcpFrom(t, hostSwitch, tcp, invite("idle-allowed")); !ok || !signed(r) {
		t.Fatalf("switch behind %d idle connections: %v\n%s", n, ok, r.raw)
	}
	// Closing one of the admitted ones frees a slot for the same host.
	var open []*net.TCPConn
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				open = append(open, c)
			}
		}
	}
	if len(open) != perSource {
		t.Fatalf("%d connections open, want %d", len(open), perSource)
	}
	_ = open[0].Close()
	for {
		if r, ok := tcpFrom(t, hostOther, tcp, invite("after-close")); ok {
			if r.code != 302 {
				t.Fatalf("other host after a close:\n%s", r.raw)
			}
			break
		}
		// The server had not yet seen the close; it will.
	}
}

// TestIdleConnectionClosed: a connection without a first message is
// closed at the first-message deadline, well before the idle timeout.
func TestIdleConnectionClosed(t *testing.T) {
	_, tcp, d := secServer(t, prefixes(hostSwitch), ServerOptions{FirstMessageTimeout: 100 * time.Millisecond, IdleTimeout: time.Hour})
	c, err := dialFrom(hostSwitch, tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A keep-alive is answered but is no message.
	if _, err := c.Write([]byte("\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.wait(ctx, t, "first_message_timeout", 1)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if string(b) != "\r\n" || (err != nil && !isReset(err)) {
		t.Fatalf("read %q, %v; want the keep-alive answer, then EOF", b, err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(ne.Err.Error(), "reset")
}

// TestFirstMessageThenIdle: a connection that delivered a message keeps
// the long idle timeout (the first-message deadline no longer applies).
func TestFirstMessageThenIdle(t *testing.T) {
	_, tcp, d := secServer(t, prefixes(hostSwitch), ServerOptions{FirstMessageTimeout: 200 * time.Millisecond, IdleTimeout: time.Hour})
	c, err := dialFrom(hostSwitch, tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	exchange := func(id string) {
		t.Helper()
		if _, err := c.Write([]byte(invite(id))); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := readStream(br, Limits{}.withDefaults(), func([]byte, *Request) {})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if r := parseResponse(t, b); !signed(r) {
			t.Fatalf("%s:\n%s", id, r.raw)
		}
	}
	exchange("keep-1")
	// A second, silent connection shows the first-message deadline has
	// passed; the first one must still be open after it.
	idle, err := dialFrom(hostSwitch, tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d.wait(ctx, t, "first_message_timeout", 1)
	exchange("keep-2")
}
