package amitest

import (
	"github.com/stirgate/stirgate/ami"

	"bufio"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// These tests pin the peer's bytes to what main/manager.c writes, so that
// the client tests prove something about Asterisk and not about a
// convenient fake.

func raw(t *testing.T, p *Peer) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

// readFor reads whatever arrives within d: the bytes of one or more writes.
func readFor(t *testing.T, c net.Conn, d time.Duration) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	b, _ := io.ReadAll(c)
	return string(b)
}

func start(t *testing.T, o Options) *Peer {
	t.Helper()
	p, err := Listen("127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPeerBytes(t *testing.T) {
	fixed := time.Unix(1700000000, 123456000)
	p := start(t, Options{Username: "u", Secret: "s", Now: func() time.Time { return fixed }})
	c, br := raw(t, p)
	banner, err := br.ReadString('\n')
	if err != nil || banner != "Asterisk Call Manager/9.0.0\r\n" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	c.Write([]byte("Action: Login\r\nActionID: 1\r\nUsername: u\r\nSecret: s\r\n\r\n"))
	// The response and FullyBooted come in one write: a single Read (after
	// the banner line, which bufio already consumed) returns both.
	buf := make([]byte, 4096)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n" +
		"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
	if got := string(buf[:n]); got != want {
		t.Fatalf("login write\n got %q\nwant %q", got, want)
	}
	c.Write([]byte("Action: Ping\r\nActionID: 2\r\n\r\n"))
	if got := readFor(t, c, 200*time.Millisecond); got != "Response: Success\r\nActionID: 2\r\nPing: Pong\r\nTimestamp: 1700000000.123456\r\n\r\n" {
		t.Errorf("ping %q", got)
	}
	c.Write([]byte("Action: Originate\r\nActionID: 3\r\n\r\n"))
	if got := readFor(t, c, 200*time.Millisecond); got != "Response: Error\r\nActionID: 3\r\nMessage: Invalid/unknown command\r\n\r\n" {
		t.Errorf("unknown action %q", got)
	}
	c.Write([]byte("Action: Logoff\r\nActionID: 4\r\n\r\n"))
	if got := readFor(t, c, time.Second); got != "Response: Goodbye\r\nActionID: 4\r\nMessage: Thanks for all the fish.\r\n\r\n" {
		t.Errorf("logoff %q (and the session must close)", got)
	}
}

func TestPeerAuthFailureCloses(t *testing.T) {
	p := start(t, Options{Username: "u", Secret: "s"})
	c, br := raw(t, p)
	br.ReadString('\n')
	c.Write([]byte("Action: Login\r\nActionID: 9\r\nUsername: u\r\nSecret: nope\r\n\r\n"))
	c.SetReadDeadline(time.Now().Add(time.Second))
	rest, _ := io.ReadAll(br)
	if string(rest) != "Response: Error\r\nActionID: 9\r\nMessage: Authentication failed\r\n\r\n" {
		t.Errorf("got %q", rest)
	}
	if p.Logins() != 0 || p.Emit(nil) != 0 {
		t.Error("a failed login counts as a session")
	}
}

// TestPeerDropsSlowReader: a client that stops reading is dropped once a
// write blocks longer than the write timeout, as manager.c does.
func TestPeerDropsSlowReader(t *testing.T) {
	p := start(t, Options{WriteBuffer: 4096})
	c, br := raw(t, p)
	br.ReadString('\n')
	c.Write([]byte("Action: Login\r\nUsername: x\r\nSecret: \r\n\r\n"))
	for p.Sessions() == 0 {
		time.Sleep(time.Millisecond)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	ev := []byte(strings.Repeat("x", 1000))
	start := time.Now()
	for i := 0; i < 100000 && p.Dropped() == 0; i++ {
		p.Emit(pad(ev))
	}
	// The drop is counted before the session is unregistered: give the
	// unregistering a moment.
	for deadline := time.Now().Add(2 * time.Second); p.Sessions() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if p.Dropped() != 1 || p.Sessions() != 0 {
		t.Fatalf("dropped %d, sessions %d", p.Dropped(), p.Sessions())
	}
	t.Logf("slow reader dropped after %v", time.Since(start))
}

// pad builds an event of about len(b) bytes.
func pad(b []byte) ami.Message {
	return ami.Message{{Key: "Event", Value: "Pad"}, {Key: "Data", Value: string(b)}}
}

func TestPeerInterleaves(t *testing.T) {
	p := start(t, Options{})
	c, br := raw(t, p)
	br.ReadString('\n')
	c.Write([]byte("Action: Login\r\nActionID: 1\r\nSecret: \r\n\r\n"))
	for p.Sessions() == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			p.Emit(ami.Message{{Key: "Event", Value: "Newchannel"}})
		}
	}()
	c.Write([]byte("Action: Ping\r\nActionID: p\r\n\r\n"))
	<-done
	all := readFor(t, c, 300*time.Millisecond)
	if n := strings.Count(all, "Event: Newchannel\r\n"); n != 200 {
		t.Errorf("%d events", n)
	}
	if !regexp.MustCompile(`Response: Success\r\nActionID: p\r\nPing: Pong\r\nTimestamp: \d+\.\d{6}\r\n\r\n`).MatchString(all) {
		t.Error("ping response missing or torn by an event")
	}
}
