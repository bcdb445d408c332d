package rawudp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
)

func listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	a, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP(network, a)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends from a net.UDPConn peer to the wrapped socket and back,
// and checks the source Conn reports is the one the net package reports
// for the same datagram on the same kind of socket.
func roundTrip(t *testing.T, srvNet, srvAddr, peerNet, peerAddr string) {
	t.Helper()
	srv := listen(t, srvNet, srvAddr)
	ref := listen(t, srvNet, srvAddr) // the net package's view, for comparison
	peer := listen(t, peerNet, peerAddr)
	u, err := New(srv)
	if err != nil {
		t.Fatal(err)
	}
	dst := func(c *net.UDPConn) netip.AddrPort {
		host, _, _ := net.SplitHostPort(peerAddr) // the peer's loopback reaches the server's
		return netip.AddrPortFrom(netip.MustParseAddr(host), c.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	}
	msg := []byte("INVITE sip:+12025550123@example.com SIP/2.0\r\n\r\n")
	if _, err := peer.WriteToUDPAddrPort(msg, dst(srv)); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.WriteToUDPAddrPort(msg, dst(ref)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, src, err := u.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("read %q, sent %q", buf[:n], msg)
	}
	_, want, err := ref.ReadFromUDPAddrPort(make([]byte, 1500))
	if err != nil {
		t.Fatal(err)
	}
	if src != want {
		t.Fatalf("source %v, the net package says %v", src, want)
	}
	for _, back := range []netip.AddrPort{src, netip.AddrPortFrom(src.Addr().Unmap(), src.Port())} {
		reply := []byte("SIP/2.0 302 Moved Temporarily\r\n\r\n")
		if n, err := u.WriteTo(reply, back); err != nil || n != len(reply) {
			t.Fatalf("write to %v: %d, %v", back, n, err)
		}
		n, _, err = peer.ReadFromUDPAddrPort(buf)
		if err != nil || !bytes.Equal(buf[:n], reply) {
			t.Fatalf("peer read %q, %v", buf[:n], err)
		}
	}
}

func TestIPv4(t *testing.T) { roundTrip(t, "udp4", "127.0.0.1:0", "udp4", "127.0.0.1:0") }

func TestDualStackWildcard(t *testing.T) {
	// "udp" with no address is an AF_INET6 socket that also takes IPv4:
	// sources come as IPv4-mapped addresses, and a reply to a plain IPv4
	// address must be mapped before sendto.
	roundTrip(t, "udp", ":0", "udp4", "127.0.0.1:0")
	roundTrip(t, "udp", ":0", "udp6", "[::1]:0")
}

func TestIPv6(t *testing.T) { roundTrip(t, "udp6", "[::1]:0", "udp6", "[::1]:0") }

func TestTruncatesAsNetDoes(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	peer := listen(t, "udp4", "127.0.0.1:0")
	u, err := New(srv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := peer.WriteTo(bytes.Repeat([]byte("x"), 100), srv.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, _, err := u.ReadFrom(buf)
	if err != nil || n != len(buf) {
		t.Fatalf("read %d, %v; want %d (the rest of the datagram is dropped)", n, err, len(buf))
	}
}

func TestIPv6DestinationOnIPv4Socket(t *testing.T) {
	u, err := New(listen(t, "udp4", "127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.WriteTo([]byte("x"), netip.MustParseAddrPort("[2001:db8::1]:5060")); err == nil {
		t.Fatal("sent an IPv6 destination on an IPv4 socket")
	}
	if _, err := u.WriteTo([]byte("x"), netip.AddrPort{}); err == nil {
		t.Fatal("sent to the zero address")
	}
}

func TestCloseEndsRead(t *testing.T) {
	srv := listen(t, "udp4", "127.0.0.1:0")
	u, err := New(srv)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, _, err := u.ReadFrom(make([]byte, 100))
		done <- err
	}()
	srv.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
	if _, err := u.WriteTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
}
