package agi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
	"github.com/stirgate/stirgate/internal/ratelog"
)

// captureLog is a slog.Handler that keeps every record, for counting.
type captureLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *captureLog) Enabled(context.Context, slog.Level) bool { return true }
func (c *captureLog) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r.Clone())
	c.mu.Unlock()
	return nil
}
func (c *captureLog) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *captureLog) WithGroup(string) slog.Handler      { return c }

// count returns how many records have msg, and the sum of their
// suppressed counts.
func (c *captureLog) count(msg string) (lines int, suppressed int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.recs {
		if r.Message != msg {
			continue
		}
		lines++
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == ratelog.SuppressedKey {
				suppressed += a.Value.Int64()
			}
			return true
		})
	}
	return lines, suppressed
}

func (c *captureLog) atLeast(level slog.Level) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.recs {
		if r.Level >= level {
			n++
		}
	}
	return n
}

// dropCounter counts Options.Dropped reports and lets a test wait for one.
type dropCounter struct {
	mu sync.Mutex
	n  map[string]int
	ch chan struct{}
}

func newDropCounter() *dropCounter {
	return &dropCounter{n: map[string]int{}, ch: make(chan struct{}, 1)}
}

func (d *dropCounter) add(reason string) {
	d.mu.Lock()
	d.n[reason]++
	d.mu.Unlock()
	select {
	case d.ch <- struct{}{}:
	default:
	}
}

func (d *dropCounter) wait(t *testing.T, reason string, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		d.mu.Lock()
		got := d.n[reason]
		d.mu.Unlock()
		if got >= want {
			return
		}
		select {
		case <-d.ch:
		case <-ctx.Done():
			t.Fatalf("%d %q drops, want %d (%v)", got, reason, want, d.n)
		}
	}
}

var (
	loop1 = netip.MustParseAddr("127.0.0.1")
	loop2 = netip.MustParseAddr("127.0.0.2")
)

func dialFrom(t *testing.T, src netip.Addr, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	return c
}

// TestSilentFloodFromOneSource: 2,000 connections that never speak, all
// from one address, take that address's share of sessions and no more: a
// PBX at another address still gets its answer, and the refusals cost
// one log line, with their count, instead of one each.
func TestSilentFloodFromOneSource(t *testing.T) {
	const flood, share = 2000, DefaultMaxSessions / 2
	logs := &captureLog{}
	drops := newDropCounter()
	srv, addr := start(t, Options{
		Service:        &fakeService{},
		Logger:         slog.New(logs),
		SessionTimeout: time.Hour, // held for the whole test: only the limits refuse
		LogInterval:    time.Hour,
		Dropped:        drops.add,
	})
	var silent []net.Conn
	t.Cleanup(func() { // before the server's Shutdown (cleanups run last first)
		for _, c := range silent {
			_ = c.Close()
		}
	})
	for i := 0; i < flood; i++ {
		silent = append(silent, dialFrom(t, loop1, addr))
	}
	drops.wait(t, "max_sessions_per_source", flood-share)
	if s := srv.Stats(); s.Active != share {
		t.Fatalf("stats %+v, want %d active", s, share)
	}

	conn := dialFrom(t, loop2, addr)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	tr, err := agitest.Channel{Script: "verify"}.Serve(conn)
	if err != nil {
		t.Fatalf("session from %s behind the flood: %v", loop2, err)
	}
	checkVars(t, tr, map[string]string{VarResult: "pass"})

	msg := "agi session refused: max_sessions_per_source reached"
	if lines, _ := logs.count(msg); lines != 1 {
		t.Fatalf("%d refusal lines for %d refusals, want 1", lines, flood-share)
	}
	if n := logs.atLeast(slog.LevelWarn); n != 1 {
		t.Fatalf("%d WARN lines, want 1", n)
	}
	// Shutdown writes the count of what was held back.
	for _, c := range silent {
		_ = c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	lines, held := logs.count(msg)
	if lines != 2 || held != flood-share-1 {
		t.Fatalf("after shutdown: %d lines, %d held back; want 2 and %d", lines, held, flood-share-1)
	}
	// The silent sessions that ended on the close: one line, and the
	// summary Shutdown wrote counting the others.
	if lines, held := logs.count("agi session ended before its environment"); lines != 2 || 1+held != share {
		t.Fatalf("silent sessions: %d lines, %d held back", lines, held)
	}
}

// TestNotAllowedClosedAtAccept: a connection from outside [agi] allow is
// closed before anything is read from it, and logged once.
func TestNotAllowedClosedAtAccept(t *testing.T) {
	logs := &captureLog{}
	drops := newDropCounter()
	svc := &fakeService{}
	srv, addr := start(t, Options{
		Service:     svc,
		Logger:      slog.New(logs),
		Allow:       []netip.Prefix{netip.PrefixFrom(loop1, 32)},
		LogInterval: time.Hour,
		Dropped:     drops.add,
	})
	for i := 0; i < 3; i++ {
		c := dialFrom(t, loop2, addr)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := c.Read(make([]byte, 1))
		c.Close()
		if n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("connection from %s: read %d, %v; want EOF", loop2, n, err)
		}
	}
	drops.wait(t, "not_allowed", 3)
	if s := srv.Stats(); s.Accepted != 0 || s.Rejected != 3 {
		t.Fatalf("stats %+v", s)
	}
	if lines, _ := logs.count("agi connection refused: source not in [agi] allow"); lines != 1 {
		t.Fatalf("%d refusal lines, want 1", lines)
	}
	tr := play(t, addr, agitest.Channel{Script: "verify"})
	checkVars(t, tr, map[string]string{VarResult: "pass"})
	if len(svc.verReqs) != 1 {
		t.Fatalf("%d verifications, want the allowed one only", len(svc.verReqs))
	}
}

// TestDefaultAllowIsLoopback: with no allow-list, loopback is served and
// nothing else.
func TestDefaultAllowIsLoopback(t *testing.T) {
	s := NewServer(Options{})
	for a, want := range map[string]bool{"127.0.0.1": true, "127.0.0.2": true, "::1": true, "::ffff:127.0.0.1": true, "192.0.2.1": false, "10.0.0.1": false} {
		if got := s.Allowed(netip.MustParseAddr(a)); got != want {
			t.Errorf("Allowed(%s) = %v", a, got)
		}
	}
}
