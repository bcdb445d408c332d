package x5u

import (
	"testing"
	"time"
)

// BenchmarkGetWarm is the verifier's hot path: a cached, validated chain.
// It uses the real clock, since the one Now call per Get is part of the
// cost.
func BenchmarkGetWarm(b *testing.B) {
	const u = "https://cr.example.net/sti/shaken-ca-2030.pem"
	v := &validator{notAfter: time.Now().Add(time.Hour)}
	c, err := New(Options[*chain]{Validate: v.Validate, Offline: true, PreloadBytes: map[string][]byte{u: []byte(testPEM)}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(b.Context(), u); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Get(ctx, u); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Get(ctx, u); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	if v.calls.Load() != 1 {
		b.Fatalf("validator ran %d times, want 1", v.calls.Load())
	}
}

// TestGetWarmAllocs keeps the warm path allocation-free in the ordinary
// test run, where a benchmark would not be noticed.
func TestGetWarmAllocs(t *testing.T) {
	const u = "https://cr.example.net/cert.pem"
	c, err := New(Options[*chain]{Validate: (&validator{notAfter: t0.Add(time.Hour)}).Validate, Now: newClock().Now, Offline: true, PreloadBytes: map[string][]byte{u: []byte(testPEM)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	if _, err := c.Get(ctx, u); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { c.Get(ctx, u) }); n != 0 {
		t.Fatalf("warm Get allocates %v times", n)
	}
}
