package sipredirect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stirgate/stirgate/internal/rawudp"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("sipredirect: server closed")

// Listener is one socket the server binds.
type Listener struct {
	Network string // "udp" or "tcp"
	Address string // host:port; port 0 picks one (tests)
	Mode    Mode
}

// ServerOptions configures a Server. Zero fields take the defaults noted.
type ServerOptions struct {
	Listeners []Listener
	Handler   *Handler
	Limits    Limits
	// MaxInflight bounds requests being answered at once (default 4096);
	// beyond it INVITEs are answered 503 at once, so the switch advances
	// the route instead of waiting.
	MaxInflight int
	// IdleTimeout closes a TCP connection without traffic (default 5m).
	IdleTimeout time.Duration
	// MaxConns bounds open TCP connections (default 1024); one beyond it is
	// closed at once, so idle or slow peers cannot exhaust the server.
	MaxConns int
	// MaxConnsPerSource bounds open TCP connections from one source address
	// (default 64), so that one host, even an allowed one, cannot hold
	// every connection and lock the other switches out.
	MaxConnsPerSource int
	// FirstMessageTimeout is how long a new TCP connection has to deliver
	// its first complete message (default 5 s); IdleTimeout applies only
	// after it. A connection that opens and stays silent is closed soon.
	FirstMessageTimeout time.Duration
	// TxTTL is how long an INVITE's answer is kept for retransmissions
	// (default 32 s, 64*T1) and MaxTx how many are kept (default 200000).
	TxTTL time.Duration
	MaxTx int
	// Dropped, when set, is told of each message dropped or refused before
	// the Handler saw it (reason: malformed, overload, response), and of
	// each TCP connection closed at accept (not_allowed, connections,
	// connections_per_source) or for want of a first message
	// (first_message_timeout).
	Dropped func(reason string)
	Now     func() time.Time
	Logger  *slog.Logger
}

// Server is the SIP redirect server: it owns the sockets and the
// retransmission cache, and asks its current Handler for each answer.
type Server struct {
	o       ServerOptions
	handler atomic.Pointer[Handler]
	tx      *txCache
	sem     chan struct{}

	udp []boundUDP
	tcp []boundTCP
	wg  sync.WaitGroup // in-flight requests and connection readers

	// jobs hands a request to an idle worker; workers counts them.
	jobs    chan func()
	workers sync.WaitGroup
	base    context.Context
	stop    context.CancelFunc

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	perSrc  map[netip.Addr]int // open TCP connections by source address
	closed  bool
	done    chan struct{}
	closeMu sync.Once
}

type boundUDP struct {
	conn *net.UDPConn
	raw  *rawudp.Conn // reads and writes conn without waking the runtime's monitor
	mode Mode
}

type boundTCP struct {
	ln   *net.TCPListener
	mode Mode
}

// Listen binds every listener; Serve then answers on them.
func Listen(o ServerOptions) (*Server, error) {
	if o.Handler == nil {
		return nil, errors.New("sipredirect: no handler")
	}
	if len(o.Listeners) == 0 {
		return nil, errors.New("sipredirect: no listeners")
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 4096
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 1024
	}
	if o.MaxConnsPerSource <= 0 {
		o.MaxConnsPerSource = 64
	}
	if o.FirstMessageTimeout <= 0 {
		o.FirstMessageTimeout = 5 * time.Second
	}
	if o.TxTTL <= 0 {
		o.TxTTL = 32 * time.Second
	}
	if o.MaxTx <= 0 {
		o.MaxTx = 200000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Limits = o.Limits.withDefaults()
	s := &Server{
		o:      o,
		tx:     newTxCache(o.TxTTL, o.MaxTx),
		sem:    make(chan struct{}, o.MaxInflight),
		conns:  map[net.Conn]struct{}{},
		perSrc: map[netip.Addr]int{},
		done:   make(chan struct{}),
		jobs:   make(chan func()),
	}
	s.base, s.stop = context.WithCancel(context.Background())
	s.handler.Store(o.Handler)
	for _, l := range o.Listeners {
		mode, err := ParseMode(string(l.Mode))
		if err != nil {
			s.closeSockets()
			return nil, err
		}
		switch l.Network {
		case "udp":
			a, err := net.ResolveUDPAddr("udp", l.Address)
			if err == nil {
				var c *net.UDPConn
				if c, err = net.ListenUDP("udp", a); err == nil {
					_ = c.SetReadBuffer(4 << 20)
					var raw *rawudp.Conn
					if raw, err = rawudp.New(c); err == nil {
						s.udp = append(s.udp, boundUDP{c, raw, mode})
					} else {
						_ = c.Close()
					}
				}
			}
			if err != nil {
				s.closeSockets()
				return nil, fmt.Errorf("sip udp %s: %w", l.Address, err)
			}
		case "tcp":
			a, err := net.ResolveTCPAddr("tcp", l.Address)
			if err == nil {
				var ln *net.TCPListener
				if ln, err = net.ListenTCP("tcp", a); err == nil {
					s.tcp = append(s.tcp, boundTCP{ln, mode})
				}
			}
			if err != nil {
				s.closeSockets()
				return nil, fmt.Errorf("sip tcp %s: %w", l.Address, err)
			}
		default:
			s.closeSockets()
			return nil, fmt.Errorf("sip listener %q: network must be udp or tcp", l.Network)
		}
	}
	return s, nil
}

// SetHandler swaps the Handler; requests already running finish with the
// old one. Reloads use it.
func (s *Server) SetHandler(h *Handler) {
	if h != nil {
		s.handler.Store(h)
	}
}

// Addrs returns the bound addresses as "udp:host:port" and "tcp:host:port".
func (s *Server) Addrs() []string {
	var out []string
	for _, u := range s.udp {
		out = append(out, "udp:"+u.conn.LocalAddr().String())
	}
	for _, t := range s.tcp {
		out = append(out, "tcp:"+t.ln.Addr().String())
	}
	return out
}

// Serve answers until ctx ends or Shutdown is called. It always returns a
// non-nil error: ErrServerClosed after Shutdown or the end of ctx.
func (s *Server) Serve(ctx context.Context) error {
	for _, u := range s.udp {
		s.wg.Add(1)
		go s.readUDP(u)
	}
	for _, t := range s.tcp {
		s.wg.Add(1)
		go s.acceptTCP(t)
	}
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
	case <-s.done:
	}
	return ErrServerClosed
}

// Shutdown closes the sockets and waits for requests being answered, until
// ctx ends; then it cancels them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeSockets()
	finished := make(chan struct{})
	go func() { s.wg.Wait(); s.workers.Wait(); close(finished) }()
	select {
	case <-finished:
		s.stop()
		return nil
	case <-ctx.Done():
		s.stop()
		return ctx.Err()
	}
}

func (s *Server) closeSockets() {
	s.closeMu.Do(func() {
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		for _, u := range s.udp {
			_ = u.conn.Close()
		}
		for _, t := range s.tcp {
			_ = t.ln.Close()
		}
		close(s.done)
	})
}

func (s *Server) readUDP(u boundUDP) {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, src, err := u.raw.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.o.Logger.Warn("sip udp read", "error", err)
			continue
		}
		if n == 0 || n == len(buf) {
			s.drop("malformed")
			continue
		}
		if isKeepAlive(buf[:n]) {
			continue
		}
		data := append([]byte(nil), buf[:n]...)
		conn := u.raw
		write := func(b []byte, r *Request) {
			dst := udpDestination(r, src)
			if _, err := conn.WriteTo(b, dst); err != nil {
				s.o.Logger.Debug("sip udp write", "to", dst, "error", err)
			}
		}
		if !maybeInvite(data) {
			// ACK, OPTIONS, CANCEL and the rest are answered from the
			// message alone, without signing, verifying or waiting: here,
			// rather than woken on a worker. Every call has an ACK, so
			// this halves the hand-offs between threads (make
			// bench-capacity).
			s.process(data, src, u.mode, true, write)
			continue
		}
		select {
		case s.sem <- struct{}{}:
			s.wg.Add(1)
			s.dispatch(func() {
				defer func() { <-s.sem; s.wg.Done() }()
				s.process(data, src, u.mode, true, write)
			})
		default:
			s.overload(data, src, write)
		}
	}
}

// maybeInvite reports whether a datagram may be an INVITE: the request
// line, after any keep-alive CRLFs, starts with the method. Anything else
// (another method, a response, garbage) needs no worker.
func maybeInvite(b []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(b, "\r\n"), []byte("INVITE"))
}

// workerIdle is how long a worker waits for another request before it
// ends.
const workerIdle = 10 * time.Second

// dispatch runs job on an idle worker, or on a new one. A worker outlives
// its request because a goroutine grows its stack to the depth of ECDSA
// signing: a new goroutine per request paid for that growth (copying the
// stack) every time, 8% of a busy server's CPU (make bench-capacity).
// Concurrency stays bounded by the caller's semaphore (MaxInflight).
func (s *Server) dispatch(job func()) {
	select {
	case s.jobs <- job:
	default:
		s.workers.Add(1)
		go s.worker(job)
	}
}

func (s *Server) worker(job func()) {
	defer s.workers.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		job()
		idle.Reset(workerIdle)
		select {
		case job = <-s.jobs:
		case <-idle.C:
			return
		case <-s.done: // the sockets are closed: no request comes
			return
		}
	}
}

// udpDestination is where a UDP response goes (RFC 3261 §18.2.2 with
// RFC 3581): the source address, and the source port when the top Via asks
// for rport, else the Via's sent-by port (5060 when it has none).
func udpDestination(r *Request, src netip.AddrPort) netip.AddrPort {
	if r == nil || r.viaTop == "" || hasParam(viaParams(r.viaTop), "rport") {
		return src
	}
	sentBy := viaSentBy(r.viaTop)
	port := uint16(5060)
	if ap, err := netip.ParseAddrPort(sentBy); err == nil {
		port = ap.Port()
	} else if i := strings.LastIndexByte(sentBy, ':'); i >= 0 && !strings.HasSuffix(sentBy, "]") && strings.Count(sentBy, ":") == 1 {
		if p, err := strconv.ParseUint(sentBy[i+1:], 10, 16); err == nil && p > 0 {
			port = uint16(p)
		}
	}
	return netip.AddrPortFrom(src.Addr(), port)
}

func isKeepAlive(b []byte) bool {
	return len(bytes.Trim(b, "\r\n\x00 ")) == 0
}

func (s *Server) drop(reason string) {
	if s.o.Dropped != nil {
		s.o.Dropped(reason)
	}
}

// overload answers an INVITE 503 without working on it.
func (s *Server) overload(data []byte, src netip.AddrPort, write func([]byte, *Request)) {
	s.drop("overload")
	r, err := ParseRequest(data, s.o.Limits, true)
	if err != nil || r.Method != "INVITE" || !s.handler.Load().Allowed(src.Addr()) {
		return
	}
	a := &Answer{Code: 503, Reason: "Service Unavailable"}
	a.add("Retry-After", "1")
	write(encode(r, a, src), r)
}

// process answers one message.
func (s *Server) process(data []byte, src netip.AddrPort, mode Mode, datagram bool, write func([]byte, *Request)) {
	h := s.handler.Load()
	r, err := ParseRequest(data, s.o.Limits, datagram)
	if err != nil {
		var pe *ParseError
		if errors.As(err, &pe) && pe.Reason == "Unexpected Response" {
			s.drop("response")
			return
		}
		s.drop("malformed")
		if pe != nil && pe.Answerable && pe.Partial.Method != "ACK" && h.Allowed(src.Addr()) {
			write(encode(pe.Partial, &Answer{Code: 400, Reason: pe.Reason}, src), pe.Partial)
		}
		s.o.Logger.Debug("sip malformed", "from", src, "reason", err)
		return
	}
	// The allow-list comes before the transaction cache: a refused source
	// must neither read an answer made for another (a replayed branch would
	// get its signed 302) nor plant one (its 403 would answer the allowed
	// switch that later sends the same branch). Refusals are not cached.
	if r.Method != "INVITE" || !h.Allowed(src.Addr()) {
		if a := h.Handle(s.base, mode, r, src); a != nil {
			write(encode(r, a, src), r)
		}
		return
	}
	key := txKey(r, src, datagram)
	cached, first := s.tx.begin(key, s.o.Now())
	if !first {
		if cached != nil {
			write(cached, r)
		} else {
			write(trying(r, src), r)
		}
		return
	}
	a := h.Handle(s.base, mode, r, src)
	b := encode(r, a, src)
	s.tx.finish(key, b)
	write(b, r)
}

// txKey is the retransmission-cache key: the transaction (RFC 3261
// §17.2.3) as seen from one source over one transport. The source and
// transport are part of it because the branch is chosen by the sender:
// anyone can send a branch they have seen, and only the host that sent it
// first may get the answer made for it.
func txKey(r *Request, src netip.AddrPort, datagram bool) string {
	tr := "tcp|"
	if datagram {
		tr = "udp|"
	}
	return tr + src.Addr().Unmap().String() + "|" + r.txKey()
}

func (s *Server) acceptTCP(t boundTCP) {
	defer s.wg.Done()
	for {
		c, err := t.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.o.Logger.Warn("sip tcp accept", "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		// Refused before anything is read: a source outside the allow-list,
		// or one over its share, holds no connection slot.
		src := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		if !s.handler.Load().Allowed(src) {
			_ = c.Close()
			s.drop("not_allowed")
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		reason := ""
		switch {
		case len(s.conns) >= s.o.MaxConns:
			reason = "connections"
		case s.perSrc[src] >= s.o.MaxConnsPerSource:
			reason = "connections_per_source"
		}
		if reason != "" {
			s.mu.Unlock()
			_ = c.Close()
			s.drop(reason)
			continue
		}
		s.conns[c] = struct{}{}
		s.perSrc[src]++
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serveTCP(c, src, t.mode)
	}
}

func (s *Server) serveTCP(c *net.TCPConn, srcAddr netip.Addr, mode Mode) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		if s.perSrc[srcAddr]--; s.perSrc[srcAddr] <= 0 {
			delete(s.perSrc, srcAddr)
		}
		s.mu.Unlock()
		_ = c.Close()
	}()
	src := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	var wmu sync.Mutex
	write := func(b []byte, _ *Request) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(b); err != nil {
			_ = c.Close()
		}
	}
	br := bufio.NewReaderSize(c, 16<<10)
	// The first message must arrive soon after the connect; only a
	// connection that has carried one earns the long idle timeout.
	_ = c.SetReadDeadline(time.Now().Add(s.o.FirstMessageTimeout))
	for first := true; ; first = false {
		if !first {
			_ = c.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
		}
		msg, err := readStream(br, s.o.Limits, write)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				if first {
					_ = c.Close() // before the report, which tests wait on
					s.drop("first_message_timeout")
				}
			case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
				s.drop("malformed")
				s.o.Logger.Debug("sip tcp", "from", src, "error", err)
			}
			return
		}
		select {
		case s.sem <- struct{}{}:
			s.wg.Add(1)
			s.dispatch(func() {
				defer func() { <-s.sem; s.wg.Done() }()
				s.process(msg, src, mode, false, write)
			})
		default:
			s.overload(msg, src, write)
		}
	}
}

// readStream frames one message from a stream by its Content-Length
// (RFC 3261 §18.3), answering CRLFCRLF keep-alives with CRLF (RFC 5626).
func readStream(br *bufio.Reader, lim Limits, write func([]byte, *Request)) ([]byte, error) {
	var head bytes.Buffer
	blank := 0
	length := 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errors.New("header line too long")
			}
			return nil, err
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			if head.Len() == 0 {
				blank++
				if blank == 2 {
					write([]byte("\r\n"), nil)
					blank = 0
				}
				continue
			}
			head.Write(line)
			break
		}
		if head.Len()+len(line) > lim.MaxSize {
			return nil, errors.New("message too large")
		}
		head.Write(line)
		if k, v, ok := bytes.Cut(trimmed, []byte(":")); ok {
			name := strings.ToLower(strings.TrimSpace(string(k)))
			if name == "content-length" || name == "l" {
				n, err := strconv.Atoi(strings.TrimSpace(string(v)))
				if err != nil || n < 0 {
					return nil, errors.New("malformed Content-Length")
				}
				length = n
			}
		}
	}
	if head.Len()+length > lim.MaxSize {
		return nil, errors.New("message too large")
	}
	msg := make([]byte, head.Len()+length)
	copy(msg, head.Bytes())
	if _, err := io.ReadFull(br, msg[head.Len():]); err != nil {
		return nil, err
	}
	return msg, nil
}
