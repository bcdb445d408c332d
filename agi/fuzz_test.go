package agi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
)

// streamConn is a net.Conn whose reads come from a fixed byte stream (what
// "Asterisk" sends) and whose writes are discarded.
type streamConn struct{ r io.Reader }

func (c *streamConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *streamConn) Close() error                     { return nil }
func (c *streamConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *streamConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzSession feeds arbitrary bytes as Asterisk's side of a session: the
// environment, then replies to four commands. Nothing may panic or read
// without bound, reply codes are 2xx-5xx, and once a command fails with
// anything but a reply error every later command fails the same way.
func FuzzSession(f *testing.F) {
	f.Add([]byte(minimalEnv + "200 result=1 (a)\n200 result=0\nHANGUP\n200 result=1 ()\n510 Invalid or unknown command\n"))
	f.Add([]byte(minimalEnv + "520-Invalid command syntax.  Proper usage follows:\n Usage: x\n520 End of proper usage.\n200 result=1 (b)\n"))
	f.Add([]byte("agi_network: yes\n\nHANGUP\nHANGUP\n511 Command Not Permitted on a dead channel\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := NewSession(&streamConn{r: bytes.NewReader(data)})
		ctx := context.Background()
		if err := s.ReadEnv(ctx); err != nil {
			if s.ReadEnv(ctx) == nil {
				t.Fatal("environment error not sticky")
			}
			return
		}
		var broken error
		for i := 0; i < 4; i++ {
			r, err := s.Command(ctx, "GET VARIABLE X")
			var re *ReplyError
			switch {
			case broken != nil:
				if err == nil || err.Error() != broken.Error() {
					t.Fatalf("command %d after %v: %v", i, broken, err)
				}
			case err == nil:
				if r.Code != 200 {
					t.Fatalf("nil error with code %d", r.Code)
				}
			case errors.As(err, &re):
				if r.Code < 200 || r.Code > 599 || r.Code == 200 {
					t.Fatalf("reply error with code %d", r.Code)
				}
			default:
				broken = err
			}
		}
	})
}

// FuzzQuote: for every value that can travel in a command line, res_agi.c's
// parse_args reads back exactly the value Quote wrote.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a b", `"`, `\`, `a\"b`, "tab\t", "Invalid Identity Header", "x;info=<https://a/b>;ppt=\"shaken\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Quote(s)
		if strings.ContainsAny(s, "\r\n\x00") {
			if !errors.Is(err, ErrBadValue) {
				t.Fatalf("Quote(%q) = %q, %v; want ErrBadValue", s, q, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		argv := agitest.ParseArgs("SET VARIABLE X " + q)
		if len(argv) != 4 || argv[3] != s {
			t.Fatalf("Quote(%q) = %s; parse_args reads %q", s, q, argv)
		}
	})
}
