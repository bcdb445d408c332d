//go:build amigo

// These tests pin the defects of github.com/ivahaev/amigo v0.1.11 that made
// stirgate write its own AMI client (DEPENDENCY.md). Each asserts the
// defect is still there, so a release that fixes it fails here and the
// decision can be revisited. A defect that is the absence of something
// (an event never delivered, no error) has a positive control on the same
// peer, and absence is judged by a later marker, not by a timer. They are
// behind the "amigo" build tag and run
// without -race, because the library's own data races would fail the
// race-enabled suite:
//
//	go test -tags amigo -run Amigo -count=1 ./ami/
package ami_test

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ivahaev/amigo"

	"github.com/stirgate/stirgate/ami"
	"github.com/stirgate/stirgate/ami/amitest"
)

func amigoClient(t *testing.T, p *amitest.Peer) (*amigo.Amigo, chan map[string]string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(p.Addr())
	// A generous action timeout: the positive control's Ping must be
	// answered within it on a loaded machine.
	a := amigo.New(&amigo.Settings{Username: "stirgate", Password: "s3cret", Host: host, Port: port, ActionTimeout: 5 * time.Second})
	ch := make(chan map[string]string, 16384)
	a.SetEventChannel(ch)
	a.Connect()
	deadline := time.Now().Add(patience)
	for !a.Connected() || p.Sessions() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("amigo did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return a, ch
}

// rawLogin logs in to p with a plain socket and ami.ReadMessage, the
// positive control: the messages amigo is blamed for losing are there for
// any reader of the same peer.
func rawLogin(t *testing.T, p *amitest.Peer) []ami.Message {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(patience))
	br := bufio.NewReader(c)
	if _, err := ami.ReadBanner(br); err != nil {
		t.Fatal(err)
	}
	c.Write(ami.Message{{Key: "Action", Value: "Login"}, {Key: "Username", Value: "stirgate"}, {Key: "Secret", Value: "s3cret"}}.Bytes())
	var got []ami.Message
	for range 2 { // the login response and what came with it
		m, err := ami.ReadMessage(br)
		if err != nil {
			t.Fatalf("raw reader: %v", err)
		}
		got = append(got, m)
	}
	return got
}

// marker is a last event: amigo delivers events in the order it reads
// them, so once it has delivered the marker it has delivered everything
// before it, and "not delivered" needs no timer.
var marker = ami.Message{{Key: "Event", Value: "UserEvent"}, {Key: "UserEvent", Value: "Marker"}}

func TestAmigoDefects(t *testing.T) {
	t.Run("FullyBooted lost on login", func(t *testing.T) {
		p := startPeer(t, creds)
		// Positive control: the peer sends FullyBooted with the login
		// response, and a plain reader sees it.
		if ms := rawLogin(t, p); ms[1].Event() != "FullyBooted" {
			t.Fatalf("control: the raw reader got %v after the login response, want FullyBooted", ms[1])
		}
		_, ch := amigoClient(t, p)
		p.Emit(marker)
		for {
			select {
			case e := <-ch:
				if e["Event"] == "FullyBooted" {
					t.Fatal("amigo delivered FullyBooted: defect fixed, revisit DEPENDENCY.md")
				}
				if e["UserEvent"] == "Marker" {
					return
				}
			case <-time.After(patience):
				t.Fatal("amigo never delivered the marker")
			}
		}
	})
	t.Run("timed-out action returns no error", func(t *testing.T) {
		p := startPeer(t, creds)
		a, _ := amigoClient(t, p)
		// Positive control: an answered Ping comes back as Pong, so the
		// "Timeout" below is the peer's silence, not a broken harness.
		if res, err := a.Action(map[string]string{"Action": "Ping"}); err != nil || res["Ping"] != "Pong" {
			t.Fatalf("control: answered Ping gave %v, %v", res, err)
		}
		p.MutePings(true)
		res, err := a.Action(map[string]string{"Action": "Ping"})
		if err != nil {
			t.Fatalf("amigo returned an error (%v): defect fixed", err)
		}
		if res["Error"] != "Timeout" {
			t.Fatalf("response %v", res)
		}
	})
	t.Run("Close before Connect panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic: defect fixed")
			}
		}()
		amigo.New(&amigo.Settings{}).Close()
	})
	t.Run("repeated headers collapse to the last", func(t *testing.T) {
		p := startPeer(t, creds)
		// Positive control: the same event reaches our reader with both.
		c := dial(t, p)
		ours := serve(t, c)
		_, ch := amigoClient(t, p)
		p.Emit(ami.Message{{Key: "Event", Value: "UserEvent"}, {Key: "ChanVariable", Value: "A=1"}, {Key: "ChanVariable", Value: "B=2"}})
		for {
			if m := next(t, ours); m.Event() == "UserEvent" {
				if got := m.All("ChanVariable"); len(got) != 2 {
					t.Fatalf("control: our reader got ChanVariable %q, want both", got)
				}
				break
			}
		}
		for e := range ch {
			if e["Event"] == "UserEvent" {
				if e["ChanVariable"] != "B=2" {
					t.Fatalf("got %q: defect fixed", e["ChanVariable"])
				}
				return
			}
		}
	})
	t.Run("a slow handler stalls the reader until Asterisk drops it", func(t *testing.T) {
		p := startPeer(t, amitest.Options{Username: "stirgate", Secret: "s3cret", WriteBuffer: 16 << 10})
		host, port, _ := net.SplitHostPort(p.Addr())
		a := amigo.New(&amigo.Settings{Username: "stirgate", Password: "s3cret", Host: host, Port: port})
		block := make(chan struct{})
		defer close(block)
		a.RegisterDefaultHandler(func(map[string]string) { <-block })
		a.Connect()
		for p.Sessions() == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		// amigo queues 8192 events for its handlers and then its reader
		// blocks; what follows fills the kernel's socket buffers (several MB
		// on loopback), after which manager.c's write timeout drops it. A
		// reader that kept reading would take the whole burst. Either a
		// drop or a session gone before the burst ends is the defect.
		const burst = 400000
		delivered := 0
		for i := range burst {
			if p.Emit(ami.Message{{Key: "Event", Value: "Newchannel"}, {Key: "Uniqueid", Value: fmt.Sprint(i)}}) == 0 {
				break
			}
			delivered++
		}
		if p.Dropped() == 0 && delivered == burst {
			t.Fatalf("amigo read a %d-event burst behind a blocked handler: defect fixed", burst)
		}
	})
}
