// Package amitest plays Asterisk's side of the Manager Interface for
// tests, following main/manager.c: the banner, "Key: Value\r\n" lines
// ended by an empty line, the Login response followed in the same write by
// the FullyBooted event, Ping answered with Pong and a timestamp, events
// interleaved with action responses, and a client that does not read
// within the write timeout (manager.c's writetimeout, 100 ms by default)
// dropped.
package amitest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stirgate/stirgate/ami"
)

// Options configures a Peer. The zero value accepts any credentials.
type Options struct {
	Username, Secret string
	// Version is the AMI version in the banner (manager.c's AMI_VERSION).
	Version string
	// WriteTimeout is how long a write to a client may block before the
	// client is dropped (manager.c writetimeout; default 100ms).
	WriteTimeout time.Duration
	// WriteBuffer, when positive, shrinks each session's socket send
	// buffer so that a client that stops reading is noticed quickly.
	WriteBuffer int
	// Now stamps Ping responses; default time.Now.
	Now func() time.Time
}

// Peer is a fake Asterisk AMI server on a loopback port.
type Peer struct {
	opts Options
	ln   net.Listener

	mu       sync.Mutex
	sessions map[*session]bool
	actions  []ami.Message
	loggedIn chan struct{} // closed and replaced on every login

	mutePings atomic.Bool
	logins    atomic.Int64
	dropped   atomic.Int64
	emitted   atomic.Int64
	wg        sync.WaitGroup
}

type session struct {
	c        net.Conn
	wmu      sync.Mutex
	loggedIn bool
}

// Listen starts a Peer on addr ("127.0.0.1:0" for any port).
func Listen(addr string, opts Options) (*Peer, error) {
	if opts.Version == "" {
		opts.Version = "9.0.0"
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 100 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Peer{opts: opts, ln: ln, sessions: map[*session]bool{}, loggedIn: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the listening address.
func (p *Peer) Addr() string { return p.ln.Addr().String() }

func (p *Peer) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.opts.WriteBuffer > 0 {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetWriteBuffer(p.opts.WriteBuffer)
			}
		}
		s := &session{c: c}
		p.mu.Lock()
		p.sessions[s] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(s)
	}
}

// write sends b in one write under the write timeout; a timeout drops the
// session, as manager.c's send_string does (ast_iostream_write with the
// session's writetimeout; on failure the session is marked for hangup).
func (p *Peer) write(s *session, b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.c.SetWriteDeadline(time.Now().Add(p.opts.WriteTimeout))
	_, err := s.c.Write(b)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			p.dropped.Add(1)
		}
		s.c.Close()
	}
	return err
}

func (p *Peer) serve(s *session) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.sessions, s)
		p.mu.Unlock()
		s.c.Close()
	}()
	if p.write(s, []byte("Asterisk Call Manager/"+p.opts.Version+"\r\n")) != nil {
		return
	}
	br := bufio.NewReader(s.c)
	for {
		m, err := ami.ReadMessage(br)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.actions = append(p.actions, m)
		p.mu.Unlock()
		if !p.action(s, m) {
			return
		}
	}
}

func resp(id string, hs ...ami.Header) []byte {
	m := ami.Message{{Key: "Response", Value: "Success"}}
	if id != "" {
		m = append(m, ami.Header{Key: "ActionID", Value: id})
	}
	return append(m, hs...).Bytes()
}

// action answers one action; false ends the session.
func (p *Peer) action(s *session, m ami.Message) bool {
	id := m.Get("ActionID")
	switch strings.ToLower(m.Get("Action")) {
	case "login":
		if (p.opts.Username != "" && m.Get("Username") != p.opts.Username) || m.Get("Secret") != p.opts.Secret {
			// manager.c action_login: astman_send_error "Authentication
			// failed", and process_message ends the session.
			p.write(s, ami.Message{{Key: "Response", Value: "Error"}, {Key: "ActionID", Value: id}, {Key: "Message", Value: "Authentication failed"}}.Bytes())
			return false
		}
		// manager.c action_login: astman_send_ack "Authentication
		// accepted", then, when Asterisk is fully booted, the FullyBooted
		// event appended to the same output. One write here: the response
		// and the event arrive together, which is what a client reading the
		// response through a private buffer loses.
		b := resp(id, ami.Header{Key: "Message", Value: "Authentication accepted"})
		b = append(b, ami.Message{{Key: "Event", Value: "FullyBooted"}, {Key: "Privilege", Value: "system,all"}, {Key: "Status", Value: "Fully Booted"}}.Bytes()...)
		p.mu.Lock()
		s.loggedIn = true
		p.mu.Unlock()
		if p.write(s, b) != nil {
			return false
		}
		p.logins.Add(1)
		p.mu.Lock()
		close(p.loggedIn)
		p.loggedIn = make(chan struct{})
		p.mu.Unlock()
		return true
	case "ping":
		// manager.c action_ping: "Ping: Pong" and "Timestamp: %ld.%06lu".
		if p.mutePings.Load() {
			return true // a half-open link: the request vanishes
		}
		now := p.opts.Now()
		ts := fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
		return p.write(s, resp(id, ami.Header{Key: "Ping", Value: "Pong"}, ami.Header{Key: "Timestamp", Value: ts})) == nil
	case "logoff":
		// manager.c action_logoff.
		p.write(s, ami.Message{{Key: "Response", Value: "Goodbye"}, {Key: "ActionID", Value: id}, {Key: "Message", Value: "Thanks for all the fish."}}.Bytes())
		return false
	default:
		// manager.c process_message: an action it has no handler for.
		return p.write(s, ami.Message{{Key: "Response", Value: "Error"}, {Key: "ActionID", Value: id}, {Key: "Message", Value: "Invalid/unknown command"}}.Bytes()) == nil
	}
}

// Emit writes an event to every logged-in session and returns how many
// took it. Like Asterisk, an event for nobody is gone.
func (p *Peer) Emit(m ami.Message) int {
	p.mu.Lock()
	var ss []*session
	for s := range p.sessions {
		if s.loggedIn {
			ss = append(ss, s)
		}
	}
	p.mu.Unlock()
	b := m.Bytes()
	n := 0
	for _, s := range ss {
		if p.write(s, b) == nil {
			n++
		}
	}
	if n > 0 {
		p.emitted.Add(1)
	}
	return n
}

// MutePings makes the peer swallow Ping actions, as a half-open TCP link
// would: the client's keepalive must notice.
func (p *Peer) MutePings(on bool) { p.mutePings.Store(on) }

// LoggedIn returns a channel closed at the next successful login.
func (p *Peer) LoggedIn() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loggedIn
}

// Sessions is the number of logged-in sessions now.
func (p *Peer) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for s := range p.sessions {
		if s.loggedIn {
			n++
		}
	}
	return n
}

// Logins counts successful logins; Dropped counts sessions dropped for a
// write timeout; Emitted counts events at least one session took.
func (p *Peer) Logins() int64  { return p.logins.Load() }
func (p *Peer) Dropped() int64 { return p.dropped.Load() }
func (p *Peer) Emitted() int64 { return p.emitted.Load() }

// Actions returns every action received, in order.
func (p *Peer) Actions() []ami.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ami.Message(nil), p.actions...)
}

// Close kills the peer abruptly, like an Asterisk crash: the listener and
// every session close without a goodbye.
func (p *Peer) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for s := range p.sessions {
		s.c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}
