package ami

import (
	"container/list"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

// Options configures a Listener. Recorder is required; every other zero
// field takes the default in its comment.
type Options struct {
	Address  string // Asterisk AMI host:port (127.0.0.1:5038)
	Username string
	Secret   string
	// System is the first part of every record's identity.
	System string
	// PingInterval is the keepalive period and the deadline of each Ping
	// (5s): a session that does not answer in time is torn down, which is
	// how a half-open TCP connection is noticed.
	PingInterval time.Duration
	// DialTimeout bounds connect, banner and login (10s).
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the reconnect delay, which doubles
	// after each failure (500ms, 30s).
	BackoffMin, BackoffMax time.Duration
	// MaxChannels bounds the channels remembered between Newchannel and
	// Hangup (100000); the oldest is forgotten first.
	MaxChannels int
	// Recorder receives outcomes on the reader goroutine, so it must not
	// block: use a *outcome.Writer.
	Recorder outcome.Recorder
	Logger   *slog.Logger
	Now      func() time.Time
}

// Stats are counters since New.
type Stats struct {
	Logins   int64 // successful logins
	Events   int64 // events read
	Outcomes int64 // StirShaken outcomes recorded
	Enriched int64 // Hangup enrichments recorded
	Gaps     int64 // gap records written
	Errors   int64 // Recorder refusals
}

// Listener keeps one AMI session alive forever and records outcomes.
type Listener struct {
	opts Options
	log  *slog.Logger

	chans    map[string]*list.Element // Uniqueid → *channel
	order    *list.List               // oldest first
	lastSeen atomic.Int64             // unix nanos of the last message read

	mu   sync.Mutex
	conn *Conn

	logins, events, outcomes, enriched, gaps, errs atomic.Int64
}

type channel struct {
	uid, linkedID, caller, exten string
	recorded                     string // kind of the recorded outcome, "" if none
}

// New returns a Listener; call Run.
func New(opts Options) *Listener {
	if opts.Address == "" {
		opts.Address = "127.0.0.1:5038"
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 5 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	opts.BackoffMax = max(opts.BackoffMax, opts.BackoffMin)
	if opts.MaxChannels <= 0 {
		opts.MaxChannels = 100000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Listener{opts: opts, log: opts.Logger, chans: map[string]*list.Element{}, order: list.New()}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l
}

// Stats returns the counters.
func (l *Listener) Stats() Stats {
	return Stats{l.logins.Load(), l.events.Load(), l.outcomes.Load(), l.enriched.Load(), l.gaps.Load(), l.errs.Load()}
}

// Connected reports whether a session is logged in now.
func (l *Listener) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil
}

// ErrNoRecorder is returned by Run when Options.Recorder is nil.
var ErrNoRecorder = errors.New("ami: Options.Recorder is required")

// Run connects, serves, and reconnects with capped exponential backoff
// until ctx ends; then it returns nil. Each time a session is lost and a
// new one logs in, a "gap" record spans the silence.
func (l *Listener) Run(ctx context.Context) error {
	if l.opts.Recorder == nil {
		return ErrNoRecorder
	}
	backoff := l.opts.BackoffMin
	var lostAt time.Time
	var lostWhy string
	for {
		c, err := Dial(ctx, l.opts.Address, DialOptions{
			Username: l.opts.Username, Secret: l.opts.Secret, Timeout: l.opts.DialTimeout,
			WriteTimeout: l.opts.PingInterval,
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Jitter keeps a fleet of listeners from reconnecting in step
			// after an Asterisk restart.
			d := backoff/2 + rand.N(backoff/2+1)
			l.log.Warn("ami connect failed", "addr", l.opts.Address, "err", err, "retry_in", d)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
			backoff = min(2*backoff, l.opts.BackoffMax)
			continue
		}
		l.logins.Add(1)
		l.log.Info("ami logged in", "addr", l.opts.Address, "version", c.Version())
		if !lostAt.IsZero() {
			l.recordGap(ctx, lostAt, l.opts.Now(), lostWhy)
		}
		started := time.Now()
		err = l.session(ctx, c)
		if ctx.Err() != nil {
			return nil
		}
		lostAt = l.opts.Now()
		if ns := l.lastSeen.Load(); ns != 0 {
			// Nothing was heard after the last message: the gap starts
			// there, not when the keepalive gave up.
			lostAt = time.Unix(0, ns).UTC()
		}
		lostWhy = err.Error()
		l.log.Warn("ami session lost", "err", err)
		if time.Since(started) > l.opts.BackoffMax {
			backoff = l.opts.BackoffMin
		}
	}
}

// session serves one logged-in connection with its keepalive.
func (l *Listener) session(ctx context.Context, c *Conn) error {
	l.mu.Lock()
	l.conn = c
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.conn = nil
		l.mu.Unlock()
	}()
	l.lastSeen.Store(l.opts.Now().UnixNano())
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pingErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pingErr <- l.keepalive(sctx, c)
	}()
	err := c.Serve(sctx, l.handle)
	cancel()
	wg.Wait()
	if perr := <-pingErr; perr != nil {
		err = perr // the keepalive closed the conn: its reason is the real one
	}
	return err
}

// keepalive pings every PingInterval with the same deadline; a miss closes
// the connection, which ends Serve.
func (l *Listener) keepalive(ctx context.Context, c *Conn) error {
	t := time.NewTicker(l.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, l.opts.PingInterval)
		err := c.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.Close()
			return err
		}
	}
}

func (l *Listener) recordGap(ctx context.Context, from, to time.Time, why string) {
	o := outcome.Outcome{
		Time: from, Until: to, System: l.opts.System, Kind: outcome.KindGap,
		UniqueID: "gap-" + from.UTC().Format(time.RFC3339Nano), Reason: why, Source: outcome.SourceAMI,
	}
	if err := l.opts.Recorder.Record(ctx, o); err != nil {
		l.errs.Add(1)
		l.log.Error("gap record refused", "err", err)
		return
	}
	l.gaps.Add(1)
	l.log.Warn("ami gap", "from", from, "to", to, "reason", why)
}

// handle runs on the reader goroutine for every event: map look-ups and a
// non-blocking Record only.
func (l *Listener) handle(m Message) {
	l.events.Add(1)
	now := l.opts.Now()
	l.lastSeen.Store(now.UnixNano())
	switch strings.ToLower(m.Event()) {
	case "newchannel":
		uid := m.Get("Uniqueid")
		if uid == "" {
			return
		}
		ch := l.channel(uid)
		ch.linkedID = m.Get("Linkedid")
		ch.caller = usable(m.Get("CallerIDNum"))
		ch.exten = m.Get("Exten")
	case "userevent":
		if !strings.EqualFold(m.Get("UserEvent"), UserEventName) {
			return
		}
		var ch *channel
		if e, ok := l.chans[m.Get("Uniqueid")]; ok {
			ch = e.Value.(*channel)
		}
		o, ok := outcomeOf(m, l.opts.System, ch, now)
		if !ok {
			l.log.Warn("StirShaken event without Uniqueid")
			return
		}
		if l.record(o) {
			l.outcomes.Add(1)
			l.channel(o.UniqueID).recorded = o.Kind
		}
	case "hangup":
		uid := m.Get("Uniqueid")
		e, ok := l.chans[uid]
		if !ok {
			return
		}
		ch := e.Value.(*channel)
		l.order.Remove(e)
		delete(l.chans, uid)
		if ch.recorded == "" {
			return
		}
		cause := m.Get("Cause")
		if txt := m.Get("Cause-txt"); txt != "" {
			cause += " " + txt
		}
		// Only the key and the cause: the store's merge fills it in.
		if l.record(outcome.Outcome{System: l.opts.System, UniqueID: uid, Kind: ch.recorded, HangupCause: cause}) {
			l.enriched.Add(1)
		}
	}
}

func (l *Listener) record(o outcome.Outcome) bool {
	if err := l.opts.Recorder.Record(context.Background(), o); err != nil {
		l.errs.Add(1)
		l.log.Error("outcome refused", "uniqueid", o.UniqueID, "err", err)
		return false
	}
	return true
}

// channel returns the remembered channel uid, creating it and forgetting
// the oldest beyond MaxChannels (Hangups missed during a gap would
// otherwise leak).
func (l *Listener) channel(uid string) *channel {
	if e, ok := l.chans[uid]; ok {
		return e.Value.(*channel)
	}
	ch := &channel{uid: uid}
	l.chans[uid] = l.order.PushBack(ch)
	for l.order.Len() > l.opts.MaxChannels {
		old := l.order.Front()
		l.order.Remove(old)
		delete(l.chans, old.Value.(*channel).uid)
	}
	return ch
}
