package ami_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stirgate/stirgate/ami"
	"github.com/stirgate/stirgate/ami/amitest"
)

func startPeer(t *testing.T, opts amitest.Options) *amitest.Peer {
	t.Helper()
	p, err := amitest.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *amitest.Peer) *ami.Conn {
	t.Helper()
	c, err := ami.Dial(context.Background(), p.Addr(), ami.DialOptions{Username: "stirgate", Secret: "s3cret", Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs c.Serve in the background and returns the events it hands
// over, on a channel.
func serve(t *testing.T, c *ami.Conn) <-chan ami.Message {
	t.Helper()
	ch := make(chan ami.Message, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Serve(ctx, func(m ami.Message) { ch <- m }); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

func next(t *testing.T, ch <-chan ami.Message) ami.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(patience):
		t.Fatal("no event")
		return nil
	}
}

// creds is the peer most tests run against. Its write timeout is generous,
// not manager.c's 100 ms: a loaded machine can leave any reader unscheduled
// that long, and a drop no test asked for would end a session mid-test
// (TestKillPeerMidStream would see two gaps). The drop itself is tested
// with a reader that really stops (amitest, TestSlowStoreBurst).
var creds = amitest.Options{Username: "stirgate", Secret: "s3cret", WriteTimeout: time.Minute}

// The reproduced defects of github.com/ivahaev/amigo v0.1.11, each
// a test of this package's client (see DEPENDENCY.md).

// Defect 1: FullyBooted, written by manager.c in the same write as the
// login response, must not be lost.
func TestFullyBootedAfterLogin(t *testing.T) {
	p := startPeer(t, creds)
	c := dial(t, p)
	if c.Version() != "9.0.0" {
		t.Errorf("version %q", c.Version())
	}
	ev := serve(t, c)
	if m := next(t, ev); m.Event() != "FullyBooted" || m.Get("Status") != "Fully Booted" {
		t.Fatalf("first event %v, want FullyBooted", m)
	}
}

// Defect 2: an Action whose response never comes returns an error.
func TestActionTimeoutIsAnError(t *testing.T) {
	p := startPeer(t, creds)
	c := dial(t, p)
	serve(t, c)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	p.MutePings(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Ping(ctx); !errors.Is(err, ami.ErrActionTimeout) {
		t.Fatalf("muted ping: %v, want ErrActionTimeout", err)
	}
}

// Defect 3: Close before anything else, twice, or on nil, does not panic.
func TestCloseBeforeConnect(t *testing.T) {
	var c *ami.Conn
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if _, err := c.Action(context.Background(), ami.Message{{Key: "Action", Value: "Ping"}}); !errors.Is(err, ami.ErrClosed) {
		t.Errorf("Action on nil Conn: %v", err)
	}
	p := startPeer(t, creds)
	c = dial(t, p)
	c.Close()
	c.Close()
	if err := c.Serve(context.Background(), func(ami.Message) {}); err == nil {
		t.Error("Serve on a closed Conn returned nil")
	}
	l := ami.New(ami.Options{})
	if l.Connected() || l.Stats() != (ami.Stats{}) {
		t.Error("fresh listener claims activity")
	}
	if err := l.Run(context.Background()); !errors.Is(err, ami.ErrNoRecorder) {
		t.Errorf("Run without recorder: %v", err)
	}
}

// Defect 6: repeated headers all survive, in order.
func TestRepeatedHeadersKept(t *testing.T) {
	p := startPeer(t, creds)
	c := dial(t, p)
	ev := serve(t, c)
	next(t, ev) // FullyBooted
	p.Emit(ami.Message{
		{Key: "Event", Value: "UserEvent"}, {Key: "UserEvent", Value: "StirShaken"},
		{Key: "ChanVariable", Value: "STIR_RESULT=pass"},
		{Key: "ChanVariable", Value: "STIR_ATTEST=A"},
		{Key: "ChanVariable", Value: "STIR_X5U=https://c.example/a.pem?x=1"},
	})
	m := next(t, ev)
	got := m.All("chanvariable")
	want := []string{"STIR_RESULT=pass", "STIR_ATTEST=A", "STIR_X5U=https://c.example/a.pem?x=1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("ChanVariable %q, want %q", got, want)
	}
	if v, ok := m.Var("STIR_X5U"); !ok || v != "https://c.example/a.pem?x=1" {
		t.Errorf("Var = %q %v", v, ok)
	}
}

// Events interleaved with action responses reach the handler, and the
// response reaches the Action.
func TestEventsInterleavedWithResponses(t *testing.T) {
	p := startPeer(t, creds)
	c := dial(t, p)
	ev := serve(t, c)
	next(t, ev)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			p.Emit(ami.Message{{Key: "Event", Value: "Newchannel"}, {Key: "Uniqueid", Value: string(rune('a'+i%26)) + "x"}})
		}
	}()
	for range 20 {
		if err := c.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for range 200 {
		if m := next(t, ev); m.Event() != "Newchannel" {
			t.Fatalf("got %v", m)
		}
	}
}

func TestAuthFailure(t *testing.T) {
	p := startPeer(t, creds)
	_, err := ami.Dial(context.Background(), p.Addr(), ami.DialOptions{Username: "stirgate", Secret: "wrong"})
	if !errors.Is(err, ami.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
}

func TestDialNotAsterisk(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
			bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
	}()
	if _, err := ami.Dial(context.Background(), ln.Addr().String(), ami.DialOptions{}); !errors.Is(err, ami.ErrBanner) {
		t.Fatalf("err = %v, want ErrBanner", err)
	}
}

// A silent server (accepts, never greets) does not hang Dial past its
// timeout or its context.
func TestDialDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// Which of the two ended the handshake is in the error, so no clock is
	// read: the 100 ms timeout, then the cancellation (the default timeout
	// is 10 s, far behind it).
	_, err = ami.Dial(context.Background(), ln.Addr().String(), ami.DialOptions{Timeout: 100 * time.Millisecond})
	// The socket deadline may fire a hair before the context's.
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("timeout: err %v, want a deadline error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err = ami.Dial(ctx, ln.Addr().String(), ami.DialOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: err %v, want context.Canceled", err)
	}
}

func goroutines() int {
	runtime.GC()
	return runtime.NumGoroutine()
}
