//go:build !linux

package rawudp

import "net/netip"

type sys struct{}

func (u *Conn) init() error { return nil }

func (u *Conn) readFrom(b []byte) (int, netip.AddrPort, error) {
	return u.c.ReadFromUDPAddrPort(b)
}

func (u *Conn) writeTo(b []byte, dst netip.AddrPort) (int, error) {
	return u.c.WriteToUDPAddrPort(b, dst)
}
