package ami_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/ami"
	"github.com/stirgate/stirgate/ami/amitest"
	"github.com/stirgate/stirgate/outcome"
)

// tap sits between the listener and the writer and remembers every
// outcome the listener produced: the ground truth of "received".
type tap struct {
	next outcome.Recorder
	mu   sync.Mutex
	seen []outcome.Outcome
}

func (r *tap) Record(ctx context.Context, o outcome.Outcome) error {
	r.mu.Lock()
	r.seen = append(r.seen, o)
	r.mu.Unlock()
	return r.next.Record(ctx, o)
}

func (r *tap) outcomes() []outcome.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outcome.Outcome(nil), r.seen...)
}

// stuckStore holds every batch write until release is closed, and counts
// the batches that got through.
type stuckStore struct {
	outcome.Store
	release chan struct{}
	written atomic.Int64
}

func (s *stuckStore) RecordBatch(ctx context.Context, os []outcome.Outcome) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := s.Store.RecordBatch(ctx, os)
	if err == nil {
		s.written.Add(int64(len(os)))
	}
	return err
}

type rig struct {
	st     outcome.Store
	writer *outcome.Writer
	tap    *tap
	l      *ami.Listener
	stop   func()
}

func newRig(t *testing.T, addr string, mod func(*ami.Options), wrap func(outcome.Store) outcome.BatchRecorder, wopts outcome.WriterOptions) *rig {
	t.Helper()
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	var br outcome.BatchRecorder = st
	if wrap != nil {
		br = wrap(st)
	}
	if wopts.SpillPath == "" {
		wopts.SpillPath = filepath.Join(t.TempDir(), "spill.jsonl")
	}
	if wopts.RetryInterval == 0 {
		wopts.RetryInterval = 10 * time.Millisecond
	}
	w := outcome.NewWriter(br, wopts)
	tp := &tap{next: w}
	// Generous timers: a keepalive or dial that misses its deadline on a
	// loaded machine would reconnect and write a gap no test asked for.
	// TestHalfOpen sets a short PingInterval because the keepalive is its
	// subject; every other session ends only when its peer closes it.
	opts := ami.Options{
		Address: addr, Username: "stirgate", Secret: "s3cret", System: "pbx1",
		PingInterval: time.Minute, BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond,
		DialTimeout: 30 * time.Second, Recorder: tp,
	}
	if mod != nil {
		mod(&opts)
	}
	l := ami.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	lctx, lcancel := context.WithCancel(ctx)
	go func() { defer wg.Done(); l.Run(lctx) }()
	go func() { defer wg.Done(); w.Run(ctx) }()
	var once sync.Once
	r := &rig{st: st, writer: w, tap: tp, l: l}
	r.stop = func() {
		once.Do(func() {
			lcancel()
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(func() { r.stop(); st.Close() })
	return r
}

// logCount is a slog.Handler that counts records by message, so a test can
// wait for something the listener only logs.
type logCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCount) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logCount) WithGroup(string) slog.Handler            { return l }
func (l *logCount) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	l.n[r.Message]++
	return nil
}

func (l *logCount) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

// patience bounds every wait for an event: long enough that only a lost
// event, never a slow machine, runs into it.
const patience = 3 * time.Minute

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func query(t *testing.T, st outcome.Store, f outcome.Filter) []outcome.Outcome {
	t.Helper()
	f.Limit = outcome.MaxLimit
	got, err := st.Query(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func stirEvent(uid string, hs ...ami.Header) ami.Message {
	m := ami.Message{
		{Key: "Event", Value: "UserEvent"}, {Key: "Privilege", Value: "user,all"},
		{Key: "Channel", Value: "PJSIP/carrier-00000001"}, {Key: "Uniqueid", Value: uid}, {Key: "Linkedid", Value: uid},
		{Key: "Context", Value: "stir-hangup"}, {Key: "Exten", Value: "s"},
		{Key: "UserEvent", Value: "StirShaken"},
	}
	return append(m, hs...)
}

func h(k, v string) ami.Header { return ami.Header{Key: k, Value: v} }

// TestListenerRecordsCall: Newchannel, the StirShaken UserEvent and Hangup
// of one call become one row with everything in it.
func TestListenerRecordsCall(t *testing.T) {
	p := startPeer(t, creds)
	r := newRig(t, p.Addr(), nil, nil, outcome.WriterOptions{})
	<-waitLogin(t, p, 1)
	p.Emit(ami.Message{h("Event", "Newchannel"), h("Uniqueid", "1700000000.7"), h("Linkedid", "1700000000.7"),
		h("CallerIDNum", "12155550121"), h("Exten", "12155550131")})
	p.Emit(stirEvent("1700000000.7", h("Timestamp", "1700000001.250000"), h("Direction", "inbound"),
		h("STIR_RESULT", "fail"), h("STIR_VERSTAT", "TN-Validation-Failed"), h("STIR_ATTEST", "B"),
		h("STIR_ORIGID", "de305d54-75b4-431b-adb2-eb6b9e546014"), h("STIR_SIP_CODE", "436"),
		h("STIR_ERROR", "x5u_fetch_failed"), h("STIR_REASON", "Bad Identity Info"),
		h("STIR_X5U", "https://cert.carrier.example/sp.pem"), h("STIR_SPC", "567J")))
	p.Emit(ami.Message{h("Event", "Hangup"), h("Uniqueid", "1700000000.7"), h("Cause", "16"), h("Cause-txt", "Normal Clearing")})
	want := outcome.Outcome{
		Time: time.Unix(1700000001, 250000000).UTC(), System: "pbx1", UniqueID: "1700000000.7", LinkedID: "1700000000.7",
		Kind: outcome.KindVerify, Direction: "inbound", Orig: "12155550121", Dest: "12155550131",
		Result: "fail", Verstat: "TN-Validation-Failed", Attest: "B", OrigID: "de305d54-75b4-431b-adb2-eb6b9e546014",
		SIPCode: 436, ErrorName: "x5u_fetch_failed", Reason: "Bad Identity Info",
		X5U: "https://cert.carrier.example/sp.pem", SPC: "567J", HangupCause: "16 Normal Clearing", Source: outcome.SourceAMI,
	}
	waitFor(t, "merged row", patience, func() bool {
		got := query(t, r.st, outcome.Filter{})
		return len(got) == 1 && got[0].HangupCause != ""
	})
	if got := query(t, r.st, outcome.Filter{}); !reflect.DeepEqual(got[0], want) {
		t.Errorf("row\n got %+v\nwant %+v", got[0], want)
	}
}

func waitLogin(t *testing.T, p *amitest.Peer, n int64) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	waitFor(t, fmt.Sprintf("%d logins", n), patience, func() bool { return p.Logins() >= n && p.Sessions() > 0 })
	close(done)
	return done
}

// TestListenerEventMapping: the header vocabulary of the dialplan and of
// res_stir_shaken PBXes, table-driven.
func TestListenerEventMapping(t *testing.T) {
	p := startPeer(t, creds)
	r := newRig(t, p.Addr(), nil, nil, outcome.WriterOptions{})
	<-waitLogin(t, p, 1)
	cases := []struct {
		name string
		ev   ami.Message
		want func(o *outcome.Outcome)
	}{
		{"native pass", stirEvent("n1", h("VerifyResult", "Verification passed"), h("Attestation", "A"), h("CallerIDNum", "12155550100")),
			func(o *outcome.Outcome) {
				o.Kind, o.Result, o.Attest, o.Direction, o.Source, o.Orig, o.Reason = "verify", "pass", "A", "inbound", outcome.SourceNative, "12155550100", "Verification passed"
			}},
		{"native 20+ failure", stirEvent("n2", h("VerifyResult", "cert_not_trusted")),
			func(o *outcome.Outcome) {
				o.Kind, o.Result, o.ErrorName, o.Direction, o.Source, o.Reason = "verify", "fail", "cert_untrusted", "inbound", outcome.SourceNative, "cert_not_trusted"
				o.SIPCode, o.Verstat = 437, "TN-Validation-Failed"
			}},
		{"native unknown", stirEvent("n3", h("VerifyResult", "something_new")),
			func(o *outcome.Outcome) {
				o.Kind, o.Result, o.ErrorName, o.Direction, o.Source, o.Reason = "verify", "fail", "native:something_new", "inbound", outcome.SourceNative, "something_new"
			}},
		{"sign by direction", stirEvent("s1", h("Direction", "outbound"), h("STIR_RESULT", "signed"), h("STIR_ATTEST", "a")),
			func(o *outcome.Outcome) {
				o.Kind, o.Result, o.Attest, o.Direction, o.Source = "sign", "signed", "A", "outbound", outcome.SourceAMI
			}},
		{"sign by result", stirEvent("s2", h("STIR_RESULT", "unsigned"), h("STIR_ERROR", "sign_not_allowed")),
			func(o *outcome.Outcome) {
				o.Kind, o.Result, o.ErrorName, o.Source = "sign", "unsigned", "sign_not_allowed", outcome.SourceAMI
			}},
		{"from channel variables", stirEvent("c1", h("ChanVariable", "STIR_RESULT=none"), h("ChanVariable", "STIR_ERROR=no_identity"), h("ChanVariable", "STIR_SIP_CODE=428")),
			func(o *outcome.Outcome) {
				o.Kind, o.Result, o.ErrorName, o.SIPCode, o.Source = "verify", "none", "no_identity", 428, outcome.SourceAMI
			}},
		{"header beats channel variable", stirEvent("c2", h("STIR_RESULT", "pass"), h("ChanVariable", "STIR_RESULT=fail")),
			func(o *outcome.Outcome) { o.Kind, o.Result, o.Source = "verify", "pass", outcome.SourceAMI }},
	}
	for _, tc := range cases {
		p.Emit(append(tc.ev, h("Timestamp", "1700000000")))
	}
	// Not ours: other user events and events without Uniqueid.
	p.Emit(ami.Message{h("Event", "UserEvent"), h("UserEvent", "Other"), h("Uniqueid", "x")})
	p.Emit(ami.Message{h("Event", "UserEvent"), h("UserEvent", "StirShaken")})
	waitFor(t, "rows", patience, func() bool {
		return len(query(t, r.st, outcome.Filter{Kind: "verify"}))+len(query(t, r.st, outcome.Filter{Kind: "sign"})) == len(cases)
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uid := tc.ev.Get("Uniqueid")
			want := outcome.Outcome{Time: time.Unix(1700000000, 0).UTC(), System: "pbx1", UniqueID: uid, LinkedID: uid}
			tc.want(&want)
			got := query(t, r.st, outcome.Filter{Kind: want.Kind})
			for _, o := range got {
				if o.UniqueID == uid {
					if !reflect.DeepEqual(o, want) {
						t.Errorf("\n got %+v\nwant %+v", o, want)
					}
					return
				}
			}
			t.Errorf("no row for %s", uid)
		})
	}
}

// TestKillPeerMidStream: Asterisk dies while events flow and comes back on
// the same address. The listener reconnects, writes one gap record, loses
// nothing it received, and a replayed event makes no second row.
func TestKillPeerMidStream(t *testing.T) {
	p := startPeer(t, creds)
	addr := p.Addr()
	r := newRig(t, addr, nil, nil, outcome.WriterOptions{})
	<-waitLogin(t, p, 1)

	for i := range 300 {
		p.Emit(stirEvent(fmt.Sprintf("before.%d", i), h("STIR_RESULT", "pass")))
	}
	waitFor(t, "first 300", patience, func() bool { return len(query(t, r.st, outcome.Filter{})) == 300 })

	// Mid-stream: the kill lands while a burst is being written.
	var emitted atomic.Int64
	burstDone := make(chan struct{})
	go func() {
		defer close(burstDone)
		for i := 0; ; i++ {
			if p.Emit(stirEvent(fmt.Sprintf("during.%d", i), h("STIR_RESULT", "fail"), h("STIR_ERROR", "stale_iat"))) == 0 {
				return
			}
			emitted.Add(1)
		}
	}()
	waitFor(t, "burst under way", patience, func() bool { return emitted.Load() > 100 })
	p.Close()
	<-burstDone
	killedAt := time.Now()

	// Asterisk stays down until the listener has noticed: the session is
	// gone and a dial has been refused.
	waitFor(t, "the listener to notice the kill", patience, func() bool { return !r.l.Connected() })
	restartedAt := time.Now()
	p2, err := amitest.Listen(addr, creds)
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	defer p2.Close()
	<-waitLogin(t, p2, 1)
	for i := range 300 {
		p2.Emit(stirEvent(fmt.Sprintf("after.%d", i), h("STIR_RESULT", "none")))
	}
	// Duplicates: Asterisk replays nothing, but a dialplan retry or a
	// second listener can; the same key must merge.
	for i := range 50 {
		p2.Emit(stirEvent(fmt.Sprintf("before.%d", i), h("STIR_RESULT", "pass")))
	}
	seen := func() map[string]bool {
		m := map[string]bool{}
		for _, o := range r.tap.outcomes() {
			if o.Kind != outcome.KindGap {
				m[o.UniqueID] = true
			}
		}
		return m
	}
	// A last event marks the end: once the listener has it, it has read
	// everything the restarted peer sent before it.
	p2.Emit(stirEvent("after.end", h("STIR_RESULT", "pass")))
	waitFor(t, "the end marker", patience, func() bool { return seen()["after.end"] })
	waitFor(t, "everything received is stored", patience, func() bool {
		return len(query(t, r.st, outcome.Filter{})) == len(seen()) && !r.writer.Backlog()
	})

	rows := query(t, r.st, outcome.Filter{})
	ids := map[string]int{}
	for _, o := range rows {
		ids[o.UniqueID]++
	}
	for id := range seen() {
		if ids[id] != 1 {
			t.Errorf("%s: %d rows, want 1", id, ids[id])
		}
	}
	for _, prefix := range []string{"before", "after"} {
		for i := range 300 {
			if ids[fmt.Sprintf("%s.%d", prefix, i)] != 1 {
				t.Fatalf("%s.%d missing", prefix, i)
			}
		}
	}
	nDuring := 0
	for id := range ids {
		if len(id) > 7 && id[:7] == "during." {
			nDuring++
		}
	}
	t.Logf("burst: %d emitted before the kill, %d received and stored; %d rows", emitted.Load(), nDuring, len(rows))
	if nDuring == 0 {
		t.Error("nothing of the burst was stored")
	}

	gaps := query(t, r.st, outcome.Filter{Kind: outcome.KindGap})
	if len(gaps) != 1 {
		t.Fatalf("gaps %+v, want 1", gaps)
	}
	g := gaps[0]
	// The gap starts at the last message heard (the tail of the burst may
	// be read just after the kill) and ends at the login to the restarted
	// peer, so it spans the restart.
	// The store keeps milliseconds, so the start may equal the restart.
	if ms := restartedAt.Truncate(time.Millisecond); g.Time.After(ms) || g.Until.Before(ms) || g.Reason == "" {
		t.Errorf("gap %v → %v (%s); killed at %v, restarted at %v", g.Time, g.Until, g.Reason, killedAt, restartedAt)
	}
	if s := r.l.Stats(); s.Logins != 2 || s.Gaps != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestHalfOpen: the peer stops answering Ping (a half-open TCP link looks
// the same from here); the keepalive notices, the listener reconnects and
// records the gap, whose reason is the unanswered Ping. How soon it
// notices is PingInterval plus scheduling, which a test does not time.
func TestHalfOpen(t *testing.T) {
	p := startPeer(t, creds)
	p.MutePings(true) // before the login: the first Ping already vanishes
	r := newRig(t, p.Addr(), func(o *ami.Options) { o.PingInterval = 200 * time.Millisecond }, nil, outcome.WriterOptions{})
	<-waitLogin(t, p, 1)
	waitFor(t, "second login", patience, func() bool { return p.Logins() >= 2 })
	waitFor(t, "gap row", patience, func() bool { return len(query(t, r.st, outcome.Filter{Kind: outcome.KindGap})) >= 1 })
	g := query(t, r.st, outcome.Filter{Kind: outcome.KindGap})[0]
	if !strings.Contains(g.Reason, ami.ErrActionTimeout.Error()) || !strings.Contains(g.Reason, "Ping") {
		t.Errorf("gap reason %q, want the Ping timeout", g.Reason)
	}
	pings := 0
	for _, a := range p.Actions() {
		if strings.EqualFold(a.Get("Action"), "Ping") {
			pings++
		}
	}
	if pings == 0 {
		t.Error("the peer never saw a Ping")
	}
}

// TestBackoffUntilAsteriskStarts: nothing listens at first; the listener
// keeps trying, and connects once Asterisk is up. No gap: there was never
// a session to lose.
func TestBackoffUntilAsteriskStarts(t *testing.T) {
	p := startPeer(t, creds)
	addr := p.Addr()
	p.Close()
	logs := &logCount{}
	r := newRig(t, addr, func(o *ami.Options) { o.Logger = slog.New(logs) }, nil, outcome.WriterOptions{})
	// Asterisk starts only after the listener has been refused a few times.
	waitFor(t, "refused dials", patience, func() bool { return logs.count("ami connect failed") >= 3 })
	p2, err := amitest.Listen(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	<-waitLogin(t, p2, 1)
	if g := query(t, r.st, outcome.Filter{Kind: outcome.KindGap}); len(g) != 0 {
		t.Errorf("gap recorded before any session: %+v", g)
	}
}

// TestSlowStoreBurst: the store is stuck, the peer's socket buffer is
// small, and 10 000 events arrive in one burst. The listener reads all of
// them while the store has written nothing (a reader that waited for the
// store would stop after the first batch and never finish), the peer never
// drops it, and once the store moves every event is recorded.
//
// The peer's write timeout is generous rather than manager.c's 100 ms: the
// stuck store, not the scheduler of a loaded machine, is what a blocked
// reader would be waiting for here.
func TestSlowStoreBurst(t *testing.T) {
	const n = 10000
	p := startPeer(t, amitest.Options{Username: "stirgate", Secret: "s3cret", WriteBuffer: 16 << 10, WriteTimeout: 30 * time.Second})
	stuck := &stuckStore{release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(stuck.release) }) }
	defer release()
	r := newRig(t, p.Addr(), nil,
		func(st outcome.Store) outcome.BatchRecorder { stuck.Store = st; return stuck },
		outcome.WriterOptions{QueueSize: 1024})
	<-waitLogin(t, p, 1)
	start := time.Now()
	for i := range n {
		if p.Emit(stirEvent(fmt.Sprintf("burst.%d", i), h("STIR_RESULT", "pass"), h("STIR_ATTEST", "A"))) != 1 {
			t.Fatalf("event %d not delivered: client dropped=%d", i, p.Dropped())
		}
	}
	waitFor(t, "all events read", patience, func() bool { return r.l.Stats().Outcomes == n })
	read := time.Since(start)
	if w := stuck.written.Load(); w != 0 {
		t.Fatalf("the stuck store wrote %d outcomes before release", w)
	}
	release()
	waitFor(t, "all stored", patience, func() bool { return !r.writer.Backlog() && r.writer.Stats().Written+r.writer.Stats().Replayed >= n })
	if got := len(query(t, r.st, outcome.Filter{})); got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}
	ws := r.writer.Stats()
	t.Logf("%d events read in %v with the store stuck; writer %+v", n, read, ws)
	if p.Dropped() != 0 || p.Logins() != 1 {
		t.Errorf("peer dropped the client %d times, %d logins", p.Dropped(), p.Logins())
	}
	if ws.Dropped != 0 {
		t.Errorf("writer dropped %d", ws.Dropped)
	}
}

// TestNoGoroutineLeakPerReconnect (amigo defect 5) and, under -race, the
// reconnect data race (defect 4): many reconnects, then the goroutine
// count is back where it started.
func TestNoGoroutineLeakPerReconnect(t *testing.T) {
	p := startPeer(t, creds)
	addr := p.Addr()
	before := goroutines()
	r := newRig(t, addr, nil, nil, outcome.WriterOptions{})
	<-waitLogin(t, p, 1)
	for i := range 10 {
		p.Close()
		var err error
		p, err = amitest.Listen(addr, creds)
		if err != nil {
			t.Fatal(err)
		}
		<-waitLogin(t, p, 1)
		p.Emit(stirEvent(fmt.Sprintf("r.%d", i), h("STIR_RESULT", "pass")))
	}
	waitFor(t, "rows", patience, func() bool { return len(query(t, r.st, outcome.Filter{})) == 10 })
	during := goroutines()
	r.stop()
	p.Close()
	// Goroutines of closed connections end on their own schedule: wait for
	// the count to come back rather than for a fixed time.
	after := goroutines()
	for deadline := time.Now().Add(patience); after > before+2 && time.Now().Before(deadline); after = goroutines() {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("goroutines: before %d, running after 10 reconnects %d, after stop %d", before, during, after)
	if during > before+12 {
		t.Errorf("goroutines grew from %d to %d over 10 reconnects", before, during)
	}
	if after > before+2 {
		t.Errorf("goroutines after stop %d, before %d", after, before)
	}
}
