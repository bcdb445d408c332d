package outcome

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func journalFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJournalQueueFull: with the store stuck, no spill file and a queue of
// four, every outcome past the queue lives only in the journal; once the
// store answers, all of them are stored, and no sealed segment stays.
func TestJournalQueueFull(t *testing.T) {
	st := newSQLite(t)
	f := &flaky{BatchRecorder: st, block: make(chan struct{})}
	jdir := filepath.Join(t.TempDir(), "journal")
	w := NewWriter(f, WriterOptions{QueueSize: 4, JournalDir: jdir, JournalSync: 5 * time.Millisecond, RetryInterval: 5 * time.Millisecond})
	runWriter(t, w)
	const n = 300
	for i := range n {
		if err := w.Record(context.Background(), verify(fmt.Sprint("j", i), t0, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if s := w.Stats(); s.Journaled != n || s.Dropped != 0 || s.Written != 0 {
		t.Fatalf("stats with the store stuck: %+v", s)
	}
	close(f.block)
	waitFor(t, "all stored", func() bool { return !w.Backlog() && len(journalFiles(t, jdir, ".jsonl")) == 0 })
	if got := count(t, st); got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}
}

// TestJournalLeftovers: segments a killed process left (an open one,
// NUL-padded, with a torn last line; a sealed one) are stored when the
// next Writer starts, then removed.
func TestJournalLeftovers(t *testing.T) {
	st := newSQLite(t)
	jdir := t.TempDir()
	line := func(id string) string {
		return fmt.Sprintf(`{"Time":"2026-11-23T10:00:00Z","System":"pbx1","UniqueID":%q,"Kind":"verify","Result":"pass"}`+"\n", id)
	}
	open := line("a1") + line("a2") + `{"System":"pbx1","Uni` + strings.Repeat("\x00", 4096)
	if err := os.WriteFile(filepath.Join(jdir, "journal-1-1-1.part"), []byte(open), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(jdir, "journal-1-1-2.jsonl"), []byte(line("a2")+line("a3")), 0o600); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(st, WriterOptions{JournalDir: jdir, RetryInterval: 5 * time.Millisecond})
	runWriter(t, w)
	waitFor(t, "leftovers stored", func() bool { return !w.Backlog() })
	// All three have one time: the store's order among them is its own.
	got := ids(all(t, st))
	slices.Sort(got)
	if strings.Join(got, " ") != "a1 a2 a3" {
		t.Errorf("rows %v, want a1 a2 a3", got)
	}
	for _, p := range []string{"journal-1-1-1.part", "journal-1-1-2.jsonl"} {
		if _, err := os.Stat(filepath.Join(jdir, p)); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}

// TestJournalCleanStop: a Writer that stops with everything stored leaves
// an empty journal, so the next start replays nothing.
func TestJournalCleanStop(t *testing.T) {
	st := newSQLite(t)
	jdir := t.TempDir()
	w := NewWriter(st, WriterOptions{JournalDir: jdir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	for i := range 10 {
		w.Record(context.Background(), verify(fmt.Sprint("c", i), t0, nil))
	}
	cancel()
	<-done
	if got := count(t, st); got != 10 {
		t.Fatalf("%d rows, want 10", got)
	}
	if left, _ := os.ReadDir(jdir); len(left) != 0 {
		t.Errorf("journal not empty after a clean stop: %v", left)
	}
}

type nopStore struct{}

func (nopStore) RecordBatch(context.Context, []Outcome) error { return nil }

// BenchmarkWriterRecord: the cost of one Record, on the caller, with the
// journal and without, the store taking everything at once.
func BenchmarkWriterRecord(b *testing.B) {
	for _, jn := range []bool{false, true} {
		b.Run(fmt.Sprintf("journal=%v", jn), func(b *testing.B) {
			o := WriterOptions{}
			if jn {
				o.JournalDir = b.TempDir()
			}
			w := NewWriter(nopStore{}, o)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { w.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			rec := verify("bench", t0, func(o *Outcome) {
				o.Orig, o.Dest, o.Result, o.Verstat, o.Attest = "12155550121", "12155550131", "pass", "TN-Validation-Passed", "A"
				o.X5U, o.Source, o.Peer = "https://cr.example.net/sp.pem", SourceSIP, "192.0.2.1"
			})
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				rec.UniqueID = fmt.Sprint("b", i)
				if err := w.Record(context.Background(), rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
