// Package rawudp reads and writes datagrams on a *net.UDPConn with the
// socket calls made directly, still waiting for readiness on Go's network
// poller.
//
// Why: the net package makes every recvfrom and sendto a blocking-style
// system call (the runtime's entersyscall), and the first such call after
// the process went idle wakes the runtime's monitor thread, which then
// polls every 20 µs until the process is idle again. A SIP server at a
// thousand calls a second goes idle between calls, so every datagram paid
// for those wake-ups: with plain UDP echo at 1,000 datagrams/s on a 2-core
// virtual machine, 55-73 µs of CPU per datagram through net.UDPConn
// against 22-40 µs here (make bench-capacity has the server's numbers).
// The socket is non-blocking, so a call never waits in the kernel and may
// be made without entersyscall, as the runtime does for its own
// non-blocking calls.
//
// On systems other than Linux the Conn falls back to the net package.
package rawudp

import (
	"net"
	"net/netip"
)

// Conn wraps a bound UDP socket. It is safe for concurrent use as the
// *net.UDPConn is: one reader at a time, any number of writers.
type Conn struct {
	c *net.UDPConn
	sys
}

// New wraps c. c stays owned by the caller, who closes it; a read blocked
// in ReadFrom then returns an error that errors.Is(err, net.ErrClosed).
func New(c *net.UDPConn) (*Conn, error) {
	u := &Conn{c: c}
	if err := u.init(); err != nil {
		return nil, err
	}
	return u, nil
}

// ReadFrom reads one datagram into b, as (*net.UDPConn).ReadFromUDPAddrPort
// does: the source of an IPv4 datagram on a dual-stack socket is an
// IPv4-mapped IPv6 address.
func (u *Conn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	return u.readFrom(b)
}

// WriteTo sends b to dst, as (*net.UDPConn).WriteToUDPAddrPort does.
func (u *Conn) WriteTo(b []byte, dst netip.AddrPort) (int, error) {
	return u.writeTo(b, dst)
}
