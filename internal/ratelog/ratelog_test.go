package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// capture is a slog.Handler that keeps records.
type capture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.recs = append(c.recs, r.Clone())
	c.mu.Unlock()
	return nil
}
func (c *capture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *capture) WithGroup(string) slog.Handler      { return c }

func (c *capture) records() []slog.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]slog.Record(nil), c.recs...)
}

func suppressed(r slog.Record) int64 {
	var n int64
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == SuppressedKey {
			n = a.Value.Int64()
		}
		return true
	})
	return n
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	c := &capture{}
	l := slog.New(c)
	r := New(Options{Interval: time.Minute, Now: func() time.Time { return now }, NoTimer: true})

	for i := 0; i < 1000; i++ {
		r.Warn(l, "refused", "i", i)
	}
	r.Info(l, "other") // another message has its own budget
	if got := len(c.records()); got != 2 {
		t.Fatalf("%d records after a burst, want 2", got)
	}
	now = now.Add(time.Minute)
	r.Warn(l, "refused", "i", 1000)
	recs := c.records()
	if len(recs) != 3 || recs[2].Message != "refused" || suppressed(recs[2]) != 999 {
		t.Fatalf("after the interval: %d records, last %q suppressed=%d", len(recs), recs[len(recs)-1].Message, suppressed(recs[len(recs)-1]))
	}
	// Held back, then flushed: the summary carries the count.
	r.Warn(l, "refused", "i", 1001)
	r.Warn(l, "refused", "i", 1002)
	r.Flush()
	recs = c.records()
	if len(recs) != 4 || suppressed(recs[3]) != 2 {
		t.Fatalf("flush: %d records, suppressed=%d", len(recs), suppressed(recs[3]))
	}
	r.Flush() // nothing held back: nothing written
	if len(c.records()) != 4 {
		t.Fatal("empty flush wrote")
	}
}

// TestLimiterTimer: held-back records are summarised at the end of the
// interval without another record to carry the count.
func TestLimiterTimer(t *testing.T) {
	c := &capture{}
	l := slog.New(c)
	r := New(Options{Interval: 20 * time.Millisecond})
	r.Warn(l, "refused")
	r.Warn(l, "refused")
	r.Warn(l, "refused")
	deadline := time.Now().Add(10 * time.Second)
	for len(c.records()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no summary")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if recs := c.records(); len(recs) != 2 || suppressed(recs[1]) != 2 {
		t.Fatalf("%d records, suppressed=%d", len(recs), suppressed(recs[len(recs)-1]))
	}
}

func TestLimiterDisabledLevel(t *testing.T) {
	l := slog.New(slog.DiscardHandler)
	r := New(Options{})
	if r.Log(context.Background(), l, slog.LevelDebug, "x") {
		t.Fatal("wrote to a disabled level")
	}
}
