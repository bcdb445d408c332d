package ami

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of a session. They are transport conditions, not STIR outcomes,
// so they are plain sentinels; test with errors.Is.
var (
	ErrAuth          = errors.New("ami: authentication failed")
	ErrClosed        = errors.New("ami: connection closed")
	ErrActionTimeout = errors.New("ami: action timed out")
)

// DialOptions configures Dial. Zero Timeout means 10s for connect, banner
// and login together.
type DialOptions struct {
	Username string
	Secret   string
	Timeout  time.Duration
	// WriteTimeout bounds each write of an action (default 5s).
	WriteTimeout time.Duration
}

// Conn is one logged-in AMI session. One goroutine runs Serve (the only
// reader of the socket); any goroutine may call Action while it runs.
type Conn struct {
	nc      net.Conn
	br      *bufio.Reader
	version string
	wto     time.Duration

	wmu sync.Mutex // one action on the wire at a time

	mu      sync.Mutex
	pending map[string]chan Message
	early   []Message // events that arrived with the login response

	seq       atomic.Uint64
	closeOnce sync.Once
	closed    chan struct{}
	served    atomic.Bool
}

// Dial connects to addr, reads the banner and logs in. Events Asterisk
// sends in the same write as the login response (FullyBooted, see
// manager.c's authenticate path) are kept and handed to Serve first: the
// reader that consumed them is the same reader Serve goes on with.
func Dial(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ami: dial %s: %w", addr, err)
	}
	c := &Conn{
		nc: nc, br: bufio.NewReaderSize(nc, 64<<10), wto: opts.WriteTimeout,
		pending: map[string]chan Message{}, closed: make(chan struct{}),
	}
	// The handshake runs before Serve, so it reads synchronously under a
	// deadline; a cancelled ctx unblocks it by moving the deadline.
	dl, _ := ctx.Deadline()
	nc.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.login(opts); err != nil {
		nc.Close()
		if ctx.Err() != nil && !errors.Is(err, ErrAuth) {
			return nil, fmt.Errorf("ami: login to %s: %w (%w)", addr, err, ctx.Err())
		}
		return nil, fmt.Errorf("ami: login to %s: %w", addr, err)
	}
	if !stop() {
		nc.Close()
		return nil, ctx.Err()
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *Conn) login(opts DialOptions) error {
	v, err := ReadBanner(c.br)
	if err != nil {
		return err
	}
	c.version = v
	id := c.nextID()
	login := Message{{"Action", "Login"}, {"ActionID", id}, {"Username", opts.Username}, {"Secret", opts.Secret}, {"Events", "on"}}
	if _, err := c.nc.Write(login.Bytes()); err != nil {
		return err
	}
	for {
		m, err := ReadMessage(c.br)
		if err != nil {
			return err
		}
		if m.Get("ActionID") != id || m.Get("Response") == "" {
			if m.Event() != "" {
				c.early = append(c.early, m)
			}
			continue
		}
		if !strings.EqualFold(m.Get("Response"), "Success") {
			return fmt.Errorf("%w: %s", ErrAuth, m.Get("Message"))
		}
		return nil
	}
}

// Version is the AMI version from the banner ("9.0.0").
func (c *Conn) Version() string { return c.version }

func (c *Conn) nextID() string { return "stirgate-" + strconv.FormatUint(c.seq.Add(1), 10) }

// Serve reads messages until the connection fails, ctx ends or Close is
// called. Events go to handle on this goroutine, in order; handle must not
// block (Asterisk drops a client that stops reading). Responses complete
// the matching Action. Serve closes the connection before returning.
func (c *Conn) Serve(ctx context.Context, handle func(Message)) error {
	if !c.served.CompareAndSwap(false, true) {
		return errors.New("ami: Serve called twice")
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	for _, m := range c.early {
		handle(m)
	}
	c.early = nil
	for {
		m, err := ReadMessage(c.br)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			select {
			case <-c.closed:
				return ErrClosed
			default:
			}
			return err
		}
		if id := m.Get("ActionID"); id != "" && m.Get("Response") != "" {
			c.mu.Lock()
			ch := c.pending[id]
			delete(c.pending, id)
			c.mu.Unlock()
			if ch != nil {
				ch <- m // buffered: never blocks the reader
				continue
			}
		}
		if m.Event() != "" {
			handle(m)
		}
	}
}

// Action sends a (its ActionID is set here) and waits for the response
// until ctx ends, which returns ErrActionTimeout. Serve must be running.
func (c *Conn) Action(ctx context.Context, a Message) (Message, error) {
	if c == nil {
		return nil, ErrClosed
	}
	id := c.nextID()
	msg := make(Message, 0, len(a)+1)
	for _, h := range a {
		if !strings.EqualFold(h.Key, "ActionID") {
			msg = append(msg, h)
		}
	}
	msg = append(msg, Header{"ActionID", id})
	ch := make(chan Message, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()

	c.wmu.Lock()
	c.nc.SetWriteDeadline(time.Now().Add(c.wto))
	_, err := c.nc.Write(msg.Bytes())
	c.wmu.Unlock()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ami: %s: %w", a.Get("Action"), err)
	}
	select {
	case m := <-ch:
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s: %w", ErrActionTimeout, a.Get("Action"), ctx.Err())
	case <-c.closed:
		return nil, fmt.Errorf("%w: %s", ErrClosed, a.Get("Action"))
	}
}

// Ping sends Action: Ping and checks for Response: Success.
func (c *Conn) Ping(ctx context.Context) error {
	m, err := c.Action(ctx, Message{{"Action", "Ping"}})
	if err != nil {
		return err
	}
	if !strings.EqualFold(m.Get("Response"), "Success") {
		return fmt.Errorf("ami: ping: %s", m.Get("Message"))
	}
	return nil
}

// Close closes the connection. It is safe on a nil Conn, twice, and
// concurrently with Serve and Action.
func (c *Conn) Close() error {
	if c == nil {
		return nil
	}
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.nc.Close()
	})
	return err
}
