package outcome

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// batches records the size of every batch it is given.
type batches struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batches) RecordBatch(_ context.Context, os []Outcome) error {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(os))
	b.mu.Unlock()
	return nil
}

func (b *batches) got() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

func total(sizes []int) int {
	n := 0
	for _, s := range sizes {
		n += s
	}
	return n
}

// TestWriterLinger: with Linger, outcomes recorded one by one while Run is
// already waiting reach the store as one batch once it is full; without,
// the first is written alone (the negative control).
func TestWriterLinger(t *testing.T) {
	for _, tc := range []struct {
		name   string
		linger time.Duration
		want   func([]int) bool
	}{
		// An hour: only a full batch can end the wait in this test.
		{"linger", time.Hour, func(s []int) bool { return len(s) == 1 && s[0] == 10 }},
		{"no linger", 0, func(s []int) bool { return len(s) > 1 && s[0] == 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &batches{}
			w := NewWriter(st, WriterOptions{BatchSize: 10, Linger: tc.linger})
			runWriter(t, w)
			for i := range 10 {
				if err := w.Record(context.Background(), verify(fmt.Sprint("l", i), t0, nil)); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					// Run has taken the first one before the rest come.
					waitFor(t, "the first outcome to leave the queue", func() bool { return len(w.queue) == 0 })
					if tc.linger == 0 {
						waitFor(t, "the first batch", func() bool { return len(st.got()) == 1 })
					}
				}
			}
			waitFor(t, "10 outcomes written", func() bool { return total(st.got()) == 10 })
			if got := st.got(); !tc.want(got) {
				t.Fatalf("batch sizes %v", got)
			}
		})
	}
}

// TestWriterLingerStop: a batch still gathering when Run is told to stop
// is written, not lost.
func TestWriterLingerStop(t *testing.T) {
	st := &batches{}
	w := NewWriter(st, WriterOptions{BatchSize: 10, Linger: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	for i := range 3 {
		if err := w.Record(context.Background(), verify(fmt.Sprint("s", i), t0, nil)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the queue to be taken", func() bool { return len(w.queue) == 0 })
	cancel()
	<-done
	if got := st.got(); total(got) != 3 {
		t.Fatalf("batch sizes %v after stop, want 3 outcomes written", got)
	}
}
