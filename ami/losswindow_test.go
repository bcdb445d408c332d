package ami_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stirgate/stirgate/ami"
	"github.com/stirgate/stirgate/ami/amitest"
	"github.com/stirgate/stirgate/outcome"
)

// TestKillLossWindow measures what a `kill -9` of the listener would lose
// during a burst: events Asterisk has written to the socket that the
// reader has not taken yet (in the kernel's buffers), and outcomes the
// reader has handed to the Writer that are neither in the store nor in
// the fsync'd spill file (its in-memory queue and the batch being
// written). AMI has no acknowledgement and no replay, so this window is
// inherent; ami/README.md quotes the numbers this test logs
// (go test -run TestKillLossWindow -v ./ami/). It fails if the window
// outgrows its bound: QueueSize plus the overflow buffer.
func TestKillLossWindow(t *testing.T) {
	slow := func(st outcome.Store) outcome.BatchRecorder { return slowStore{st, 20 * time.Millisecond} }
	for _, tc := range []struct {
		name  string
		n     int
		pace  time.Duration // between events; 0 = as fast as the socket takes them
		wrap  func(outcome.Store) outcome.BatchRecorder
		wopts outcome.WriterOptions
	}{
		{"burst, sqlite, default queue", 10000, 0, nil, outcome.WriterOptions{}},
		{"burst, store slowed to 20ms a batch, queue 1024", 10000, 0, slow, outcome.WriterOptions{QueueSize: 1024}},
		{"paced 2ms apart, sqlite, default queue", 2000, 2 * time.Millisecond, nil, outcome.WriterOptions{}},
		{"paced 2ms apart, store slowed to 20ms a batch", 2000, 2 * time.Millisecond, slow, outcome.WriterOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Asterisk drops a client that does not read for 100 ms; a
			// loaded test machine can starve the reader that long, and a
			// drop would end the burst, not measure it.
			p := startPeer(t, amitest.Options{Username: "stirgate", Secret: "s3cret", WriteTimeout: 10 * time.Second})
			// The production keepalive (5s): the rig's 200 ms would tear the
			// session down when a Pong queues behind thousands of events.
			r := newRig(t, p.Addr(), func(o *ami.Options) { o.PingInterval = 5 * time.Second }, tc.wrap, tc.wopts)
			<-waitLogin(t, p, 1)
			inQueue := func() int64 {
				ws := r.writer.Stats()
				return r.l.Stats().Outcomes - ws.Written - ws.Spilled - ws.Dropped
			}
			n := tc.n
			var maxSocket, maxQueue, maxTotal int64
			start := time.Now()
			for i := range n {
				if tc.pace > 0 {
					time.Sleep(tc.pace)
				}
				if p.Emit(stirEvent(fmt.Sprintf("loss.%d", i), h("STIR_RESULT", "pass"), h("STIR_ATTEST", "A"))) != 1 {
					t.Fatalf("event %d not delivered", i)
				}
				// Emit returns once the bytes are in the kernel: every event
				// emitted and not yet read is in a socket buffer.
				sock := p.Emitted() - r.l.Stats().Events
				q := inQueue()
				maxSocket, maxQueue, maxTotal = max(maxSocket, sock), max(maxQueue, q), max(maxTotal, sock+q)
			}
			rate := float64(n) / time.Since(start).Seconds()
			waitFor(t, "all stored", time.Minute, func() bool {
				ws := r.writer.Stats()
				return !r.writer.Backlog() && ws.Written+ws.Replayed >= int64(n)
			})
			t.Logf("%d events at %.0f/s: at most %d in the socket, %d in the queue, %d at once",
				n, rate, maxSocket, maxQueue, maxTotal)
			queueSize := int64(tc.wopts.QueueSize)
			if queueSize == 0 {
				queueSize = 65536
			}
			if bound := queueSize + max(4*queueSize, 65536) + int64(512); maxQueue > bound {
				t.Fatalf("%d outcomes in memory, over the bound %d", maxQueue, bound)
			}
		})
	}
}

// slowStore adds latency to every batch write: the slow database of the
// measurement, not a verdict's timing.
type slowStore struct {
	outcome.Store
	latency time.Duration
}

func (s slowStore) RecordBatch(ctx context.Context, os []outcome.Outcome) error {
	time.Sleep(s.latency)
	return s.Store.RecordBatch(ctx, os)
}
