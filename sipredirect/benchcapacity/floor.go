package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/stirgate/stirgate/internal/rawudp"
)

// The transport floor: what any UDP SIP redirect server costs on this
// host at a given rate, before it parses, signs, verifies or records
// anything. The floor responder reads each datagram through the same
// layer as the server (internal/rawudp on one socket), answers an INVITE
// with a 302 copied together from its transaction fields and canned
// Identity, Date and Contact values (enough for the
// SIPp scenarios' checks), and drops the rest (the ACK). It runs as a
// child process, so that /proc counts its CPU alone, as it counts the
// server's.
//
// Its CPU per call, beside raw ECDSA, bounds what the ratio targets can
// reach here: a server can cost no less than the floor plus the signature.

// floorMain runs the responder on addr until SIGTERM.
func floorMain(addr string) error {
	a, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp", a)
	if err != nil {
		return err
	}
	_ = c.SetReadBuffer(4 << 20)
	u, err := rawudp.New(c)
	if err != nil {
		return err
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		c.Close()
	}()
	buf := make([]byte, 65536)
	var out bytes.Buffer
	for {
		n, src, err := u.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if floorAnswer(&out, buf[:n]) {
			_, _ = u.WriteTo(out.Bytes(), src)
		}
	}
}

// floorCopied are the request fields a response repeats (RFC 3261 §8.2.6.2).
var floorCopied = [][]byte{[]byte("Via:"), []byte("From:"), []byte("To:"), []byte("Call-ID:"), []byte("CSeq:")}

// floorAnswer writes the 302 for an INVITE into out; other requests get
// none.
func floorAnswer(out *bytes.Buffer, req []byte) bool {
	if !bytes.HasPrefix(req, []byte("INVITE ")) {
		return false
	}
	out.Reset()
	out.WriteString("SIP/2.0 302 Moved Temporarily\r\n")
	for rest := req; len(rest) > 0; {
		line, next, _ := bytes.Cut(rest, []byte("\r\n"))
		rest = next
		if len(line) == 0 {
			break
		}
		for _, h := range floorCopied {
			if bytes.HasPrefix(line, h) {
				out.Write(line)
				if h[0] == 'T' {
					out.WriteString(";tag=floor")
				}
				out.WriteString("\r\n")
			}
		}
	}
	// A request that carries a PASSporT (a JWS starts "eyJ") gets the
	// answer of a verification, the others that of a signature.
	if bytes.Contains(req, []byte("\r\nIdentity: eyJ")) {
		out.WriteString("Contact: <sip:+12155550131;verstat=TN-Validation-Passed@127.0.0.1>\r\n")
	} else {
		out.WriteString("Contact: <sip:+12155550131@127.0.0.1>\r\n")
	}
	out.WriteString("Identity: eyJhbGciOiJFUzI1NiJ9.eyJhdHRlc3QiOiJBIn0.c2lnbmF0dXJl;info=<https://cr.example.net/sp.pem>;alg=ES256;ppt=shaken\r\n" +
		"Date: " + time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT") + "\r\n" +
		"Content-Length: 0\r\n\r\n")
	return true
}

// floorServer is a running floor responder.
type floorServer struct {
	cmd  *exec.Cmd
	addr string
}

// startFloor runs this program again as the floor responder and waits
// until it answers an INVITE.
func startFloor(ctx context.Context) (*floorServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr("udp")
	if err != nil {
		return nil, err
	}
	f := &floorServer{addr: addr, cmd: exec.CommandContext(ctx, self, "-floor-responder", addr)}
	f.cmd.Stderr = os.Stderr
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	if err := f.waitReady(20 * time.Second); err != nil {
		f.stop()
		return nil, err
	}
	return f, nil
}

func (f *floorServer) waitReady(limit time.Duration) error {
	if !awaitAnswer(f.addr, "INVITE", "SIP/2.0 302", limit) {
		return fmt.Errorf("floor responder on %s: no answer in %s", f.addr, limit)
	}
	return nil
}

func (f *floorServer) stop() { stopProcess(f.cmd) }
