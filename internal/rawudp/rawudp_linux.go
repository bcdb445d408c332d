//go:build linux

package rawudp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"unsafe"
)

type sys struct {
	rc    syscall.RawConn
	inet6 bool // the socket is AF_INET6 (a dual-stack wildcard is)
}

func (u *Conn) init() error {
	rc, err := u.c.SyscallConn()
	if err != nil {
		return err
	}
	u.rc = rc
	var serr error
	err = rc.Control(func(fd uintptr) {
		var sa syscall.Sockaddr
		sa, serr = syscall.Getsockname(int(fd))
		_, u.inet6 = sa.(*syscall.SockaddrInet6)
	})
	if err == nil {
		err = serr
	}
	return err
}

// sockaddr holds either family; the kernel writes the one the socket has.
type sockaddr struct {
	raw [syscall.SizeofSockaddrInet6]byte
}

func (u *Conn) readFrom(b []byte) (int, netip.AddrPort, error) {
	if len(b) == 0 {
		return 0, netip.AddrPort{}, errors.New("rawudp: empty buffer")
	}
	var (
		sa      sockaddr
		n       int
		callErr error
	)
	err := u.rc.Read(func(fd uintptr) bool {
		for {
			sl := uint32(len(sa.raw))
			r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd,
				uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0,
				uintptr(unsafe.Pointer(&sa.raw[0])), uintptr(unsafe.Pointer(&sl)))
			if e == syscall.EINTR {
				continue
			}
			return done(r, e, &n, &callErr)
		}
	})
	if err != nil {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: u.c.LocalAddr(), Err: err}
	}
	if callErr != nil {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: u.c.LocalAddr(), Err: callErr}
	}
	return n, sa.addrPort(), nil
}

func (sa *sockaddr) addrPort() netip.AddrPort {
	switch family := *(*uint16)(unsafe.Pointer(&sa.raw[0])); family {
	case syscall.AF_INET:
		p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&sa.raw[0]))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), ntohs(p.Port))
	case syscall.AF_INET6:
		p := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&sa.raw[0]))
		a := netip.AddrFrom16(p.Addr)
		if p.Scope_id != 0 {
			a = a.WithZone(zoneName(int(p.Scope_id)))
		}
		return netip.AddrPortFrom(a, ntohs(p.Port))
	}
	return netip.AddrPort{}
}

func (u *Conn) writeTo(b []byte, dst netip.AddrPort) (int, error) {
	var (
		sa  sockaddr
		sl  uintptr
		err error
	)
	if sl, err = u.encode(&sa, dst); err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: u.c.LocalAddr(), Addr: net.UDPAddrFromAddrPort(dst), Err: err}
	}
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	var n int
	var callErr error
	err = u.rc.Write(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(p), uintptr(len(b)), 0,
				uintptr(unsafe.Pointer(&sa.raw[0])), sl)
			if e == syscall.EINTR {
				continue
			}
			return done(r, e, &n, &callErr)
		}
	})
	if err == nil {
		err = callErr
	}
	if err != nil {
		return n, &net.OpError{Op: "write", Net: "udp", Source: u.c.LocalAddr(), Addr: net.UDPAddrFromAddrPort(dst), Err: err}
	}
	return n, nil
}

// encode writes dst in the socket's family: an IPv4 destination on an
// AF_INET6 socket goes as an IPv4-mapped address, a mapped one on an
// AF_INET socket as plain IPv4.
func (u *Conn) encode(sa *sockaddr, dst netip.AddrPort) (uintptr, error) {
	a := dst.Addr()
	if !a.IsValid() {
		return 0, errors.New("rawudp: invalid destination")
	}
	if u.inet6 {
		p := (*syscall.RawSockaddrInet6)(unsafe.Pointer(&sa.raw[0]))
		p.Family = syscall.AF_INET6
		p.Port = htons(dst.Port())
		p.Addr = a.As16()
		if z := a.Zone(); z != "" {
			id, err := zoneIndex(z)
			if err != nil {
				return 0, err
			}
			p.Scope_id = uint32(id)
		}
		return syscall.SizeofSockaddrInet6, nil
	}
	a = a.Unmap()
	if !a.Is4() {
		return 0, errors.New("rawudp: IPv6 destination on an IPv4 socket")
	}
	p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&sa.raw[0]))
	p.Family = syscall.AF_INET
	p.Port = htons(dst.Port())
	p.Addr = a.As4()
	return syscall.SizeofSockaddrInet4, nil
}

// done reads a socket call's result for the poller's callback: false
// (wait for readiness, then call again) when the socket was not ready.
// The call itself stays in its caller: a pointer converted to uintptr is
// safe only in the argument list of the system call.
func done(r uintptr, e syscall.Errno, n *int, err *error) bool {
	switch e {
	case 0:
		*n = int(r)
	case syscall.EAGAIN:
		return false
	default:
		*err = e
	}
	return true
}

// htons and ntohs convert between a port and its network byte order as
// the sockaddr field holds it, on hosts of either byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func ntohs(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// zoneName is the zone of a link-local source: the interface's name, as
// the net package gives it, or the index when the name is unknown.
func zoneName(index int) string {
	if ifi, err := net.InterfaceByIndex(index); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(index)
}

func zoneIndex(zone string) (int, error) {
	if n, err := strconv.Atoi(zone); err == nil {
		return n, nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}
