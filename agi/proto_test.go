package agi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
)

type sessionClient struct{ s *Session }

func (c sessionClient) get(ctx context.Context, name string) (string, bool, error) {
	return c.s.GetVariable(ctx, name)
}
func (c sessionClient) getFull(ctx context.Context, expr string) (string, error) {
	v, _, err := c.s.GetFullVariable(ctx, expr)
	return v, err
}
func (c sessionClient) set(ctx context.Context, name, value string) error {
	return c.s.SetVariable(ctx, name, value)
}
func (c sessionClient) raw(ctx context.Context, line string) (int, error) {
	r, err := c.s.Command(ctx, line)
	return r.Code, err
}
func (c sessionClient) hungUp() bool { return c.s.HungUp() }
func (c sessionClient) close()       { c.s.conn.Close() }

func newSessionClient(conn net.Conn) (client, error) {
	s := NewSession(conn)
	if err := s.ReadEnv(context.Background()); err != nil {
		return nil, err
	}
	return sessionClient{s}, nil
}

// TestProtocolScenarios runs every res_agi.c behaviour of scenarios() against
// Session: each must pass, and none may make a later command read another
// command's reply.
func TestProtocolScenarios(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			for _, p := range runScenario(t, sc, newSessionClient) {
				t.Errorf("%s (%s)", p, sc.why)
			}
		})
	}
}

// pair returns both ends of a loopback TCP connection.
func pair(t *testing.T) (server, peer net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			done <- nil
			return
		}
		done <- c
	}()
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	peer = <-done
	if peer == nil {
		t.Fatal("dial failed")
	}
	t.Cleanup(func() { server.Close(); peer.Close() })
	_ = server.SetDeadline(time.Now().Add(5 * time.Second))
	_ = peer.SetDeadline(time.Now().Add(5 * time.Second))
	return server, peer
}

// scripted plays a raw exchange: for each step, read one command line and
// write the bytes given, exactly as given (one write, so one segment).
func scripted(t *testing.T, peer net.Conn, env string, replies ...string) <-chan []string {
	t.Helper()
	got := make(chan []string, 1)
	go func() {
		var cmds []string
		defer func() { got <- cmds }()
		if _, err := io.WriteString(peer, env); err != nil {
			return
		}
		r := bufio.NewReader(peer)
		for _, rep := range replies {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmds = append(cmds, strings.TrimSuffix(line, "\n"))
			if _, err := io.WriteString(peer, rep); err != nil {
				return
			}
		}
	}()
	return got
}

const minimalEnv = "agi_network: yes\nagi_network_script: verify\nagi_request: agi://127.0.0.1/verify\nagi_uniqueid: 1.1\n\n"

func TestReplyParsing(t *testing.T) {
	tests := []struct {
		name    string
		reply   string
		want    Reply
		wantErr string // "reply" for *ReplyError, "protocol" for ErrProtocol
	}{
		{"value", "200 result=1 (abc)\n", Reply{Code: 200, Result: "1", Value: "abc", HasValue: true}, ""},
		{"empty value", "200 result=1 ()\n", Reply{Code: 200, Result: "1", HasValue: true}, ""},
		{"unset", "200 result=0\n", Reply{Code: 200, Result: "0"}, ""},
		{"negative with extra", "200 result=-1 endpos=1234\n", Reply{Code: 200, Result: "-1", Extra: "endpos=1234"}, ""},
		{"value with spaces and parens", "200 result=1 (a (b) c)\n", Reply{Code: 200, Result: "1", Value: "a (b) c", HasValue: true}, ""},
		{"crlf tolerated", "200 result=1 (v)\r\n", Reply{Code: 200, Result: "1", Value: "v", HasValue: true}, ""},
		{"510", "510 Invalid or unknown command\n", Reply{Code: 510, Text: "Invalid or unknown command"}, "reply"},
		{"511 old text", "511 Command Not Permitted on a dead channel\n", Reply{Code: 511, Text: "Command Not Permitted on a dead channel"}, "reply"},
		{"520 single line", "520 Invalid command syntax.  Proper usage not available.\n", Reply{Code: 520, Text: "Invalid command syntax.  Proper usage not available."}, "reply"},
		{"520 multi-line", "520-Invalid command syntax.  Proper usage follows:\n Usage: X\n\tmore\n520 End of proper usage.\n",
			Reply{Code: 520, Text: "Invalid command syntax.  Proper usage follows:", Usage: []string{" Usage: X", "\tmore"}}, "reply"},
		// ast_agi_send(fd, chan, "%s", c->usage) prints the usage as is: when
		// it lacks a final newline the terminator is glued to its last line.
		{"520 glued terminator", "520-Invalid command syntax.  Proper usage follows:\n Usage: X520 End of proper usage.\n",
			Reply{Code: 520, Text: "Invalid command syntax.  Proper usage follows:", Usage: []string{" Usage: X"}}, "reply"},
		{"hangup then reply", "HANGUP\n200 result=1 (v)\n", Reply{Code: 200, Result: "1", Value: "v", HasValue: true}, ""},
		{"garbage", "hello\n", Reply{}, "protocol"},
		// Found by FuzzSession (testdata/fuzz/FuzzSession/code_000).
		{"code 000", "000 \n", Reply{}, "protocol"},
		{"200 without result", "200 ok\n", Reply{}, "protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, peer := pair(t)
			// The next command must read the NEXT reply, not leftovers.
			cmds := scripted(t, peer, minimalEnv, tt.reply, "200 result=1 (next)\n")
			s := NewSession(srv)
			ctx := context.Background()
			if err := s.ReadEnv(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := s.Command(ctx, "GET VARIABLE X")
			var re *ReplyError
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			case "reply":
				if !errors.As(err, &re) || re.Reply.Code != tt.want.Code {
					t.Fatalf("err = %v, want *ReplyError %d", err, tt.want.Code)
				}
			case "protocol":
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("err = %v, want ErrProtocol", err)
				}
				// A framing error breaks the session for good.
				if _, err := s.Command(ctx, "NOOP"); !errors.Is(err, ErrProtocol) {
					t.Fatalf("after protocol error: err = %v, want the same sticky error", err)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("reply = %#v\nwant    %#v", got, tt.want)
			}
			v, _, err := s.GetVariable(ctx, "Y")
			if err != nil || v != "next" {
				t.Fatalf("next command read (%q, %v), want \"next\"", v, err)
			}
			srv.Close()
			if c := <-cmds; len(c) != 2 {
				t.Fatalf("peer saw %q", c)
			}
		})
	}
}

// TestEnvironment checks the block as launch_netscript and setup_env send
// it, arguments and the query included.
func TestEnvironment(t *testing.T) {
	srv, peer := pair(t)
	ch := agitest.Channel{
		Script: "sign?attest=B&customer=acme", Args: []string{"orig=12155550121", "", "dest=12155550131"},
		UniqueID: "1700000000.42", CallerID: "12155550121", Exten: "12155550131",
	}
	go func() { _, _ = ch.Serve(peer) }()
	s := NewSession(srv)
	if err := s.ReadEnv(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := s.Env
	for k, want := range map[string]string{
		"agi_network": "yes", "agi_uniqueid": "1700000000.42", "agi_callerid": "12155550121",
		"agi_extension": "12155550131", "agi_accountcode": "", "agi_calleridname": "unknown",
		"agi_request": "agi://127.0.0.1/sign?attest=B&customer=acme",
	} {
		if got, ok := e[k]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, want)
		}
	}
	if e.Script() != "sign" {
		t.Errorf("Script() = %q", e.Script())
	}
	if q := e.Query(); q.Get("attest") != "B" || q.Get("customer") != "acme" {
		t.Errorf("Query() = %v", q)
	}
	if a := e.Args(); !reflect.DeepEqual(a, []string{"orig=12155550121", "", "dest=12155550131"}) {
		t.Errorf("Args() = %q", a)
	}
}

func TestEnvironmentLimits(t *testing.T) {
	tests := []struct {
		name string
		env  string
		want error
	}{
		{"closed before blank line", "agi_network: yes\n", ErrClosed},
		{"line without colon", "agi_network yes\n\n", ErrProtocol},
		{"endless block", strings.Repeat("agi_x: y\n", maxEnvLines+1), ErrProtocol},
		{"huge line", "agi_x: " + strings.Repeat("y", maxEnvLine+10) + "\n\n", ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, peer := pair(t)
			go func() {
				_, _ = io.WriteString(peer, tt.env)
				peer.(*net.TCPConn).CloseWrite()
			}()
			err := NewSession(srv).ReadEnv(context.Background())
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestQuoteRoundTrip checks Quote against the peer's port of parse_args:
// what SET VARIABLE sends is what the channel variable holds.
func TestQuoteRoundTrip(t *testing.T) {
	values := []string{
		"", "plain", "a b", "Invalid Identity Header", `say "hi"`, `back\slash`, `\`, `"`, `\"`,
		"tab\there", "  lead and trail  ", `eyJhbGciOiJFUzI1NiJ9.e30.sig;info=<https://cert.example/x.pem>;alg=ES256;ppt="shaken"`,
		"ünïcödé ✓",
	}
	for _, v := range values {
		q, err := Quote(v)
		if err != nil {
			t.Fatalf("Quote(%q): %v", v, err)
		}
		argv := agitest.ParseArgs("SET VARIABLE X " + q)
		if len(argv) != 4 || argv[3] != v {
			t.Errorf("Quote(%q) = %s, parse_args reads %q", v, q, argv)
		}
	}
	for _, bad := range []string{"a\nb", "a\rb", "a\x00b"} {
		if _, err := Quote(bad); !errors.Is(err, ErrBadValue) {
			t.Errorf("Quote(%q) err = %v, want ErrBadValue", bad, err)
		}
	}
}

// TestParseArgs pins the port of parse_args itself, so that the round trip
// above cannot pass by two matching mistakes.
func TestParseArgs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`SET VARIABLE X a b`, []string{"SET", "VARIABLE", "X", "a", "b"}},
		{`SET VARIABLE X "a b"`, []string{"SET", "VARIABLE", "X", "a b"}},
		{`SET VARIABLE X ""`, []string{"SET", "VARIABLE", "X", ""}},
		{`SET VARIABLE X a\ b`, []string{"SET", "VARIABLE", "X", "a b"}},
		{`SET VARIABLE X ab"c d"e`, []string{"SET", "VARIABLE", "X", "abc de"}},
		{`SET VARIABLE X "a\"b\\c"`, []string{"SET", "VARIABLE", "X", `a"b\c`}},
		{"VERBOSE  two\t spaces", []string{"VERBOSE", "two", "spaces"}},
	}
	for _, tt := range tests {
		if got := agitest.ParseArgs(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestCommandLimit: run_agi reads commands with fgets(buf, AGI_BUF_LEN), so
// a longer line is executed in two pieces and the second piece's reply
// would answer the next command. The peer shows the hazard; Session refuses
// such a line before sending anything.
func TestCommandLimit(t *testing.T) {
	t.Run("peer splits an overlong line like fgets", func(t *testing.T) {
		srv, peer := pair(t)
		go func() { _, _ = agitest.Channel{CommandBuf: 2048}.Serve(peer) }()
		r := bufio.NewReader(srv)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == "\n" {
				break
			}
		}
		long := "SET VARIABLE X " + strings.Repeat("v", 3000) + "\n"
		if _, err := io.WriteString(srv, long); err != nil {
			t.Fatal(err)
		}
		// Two replies for one line: the first 2047 bytes ran as SET
		// VARIABLE, the rest as an unknown command.
		for i, want := range []string{"200 result=1\n", "510 Invalid or unknown command\n"} {
			got, err := r.ReadString('\n')
			if err != nil || got != want {
				t.Fatalf("reply %d = %q, %v; want %q", i, got, err, want)
			}
		}
	})
	t.Run("session refuses", func(t *testing.T) {
		srv, peer := pair(t)
		ch := agitest.Channel{CommandBuf: 2048}
		trc := make(chan *agitest.Transcript, 1)
		go func() { tr, _ := ch.Serve(peer); trc <- tr }()
		s := NewSession(srv)
		ctx := context.Background()
		if err := s.ReadEnv(ctx); err != nil {
			t.Fatal(err)
		}
		max := strings.Repeat("v", MaxCommandLine-len("SET VARIABLE X \"\"\n"))
		if err := s.SetVariable(ctx, "X", max); err != nil {
			t.Fatalf("longest command: %v", err)
		}
		if err := s.SetVariable(ctx, "Y", max+"v"); !errors.Is(err, ErrCommandTooLong) {
			t.Fatalf("one byte more: err = %v, want ErrCommandTooLong", err)
		}
		// Refusing sent nothing, so the session is still in step.
		if v, _, err := s.GetVariable(ctx, "X"); err != nil || v != max[:agitest.GetVariableBuf-1] {
			t.Fatalf("after refusal: (%d bytes, %v)", len(v), err)
		}
		srv.Close()
		tr := <-trc
		if len(tr.Commands) != 2 || tr.Vars["X"] != max {
			t.Fatalf("peer saw %d commands, X of %d bytes", len(tr.Commands), len(tr.Vars["X"]))
		}
	})
}

// TestFullVariableLimit: releases with handle_getvariablefull's tmp[4096]
// cut an expansion to 4095 bytes; GET VARIABLE cuts at 1023.
func TestFullVariableLimit(t *testing.T) {
	long := strings.Repeat("x", 5000)
	srv, peer := pair(t)
	go func() {
		_, _ = agitest.Channel{Vars: map[string]string{"L": long}, Headers: map[string][]string{"Identity": {long}}}.Serve(peer)
	}()
	s := NewSession(srv)
	ctx := context.Background()
	if err := s.ReadEnv(ctx); err != nil {
		t.Fatal(err)
	}
	v, _, err := s.GetFullVariable(ctx, headerExpr("Identity", 1))
	if err != nil || len(v) != agitest.GetFullVariableBuf-1 {
		t.Fatalf("GET FULL VARIABLE: %d bytes, %v; want %d", len(v), err, agitest.GetFullVariableBuf-1)
	}
	v, _, err = s.GetVariable(ctx, "L")
	if err != nil || len(v) != agitest.GetVariableBuf-1 {
		t.Fatalf("GET VARIABLE: %d bytes, %v; want %d", len(v), err, agitest.GetVariableBuf-1)
	}
}

// TestDeadlines: a peer that stops answering ends the command at the
// context's deadline, and the session stays broken (a late reply must not
// answer a later command).
func TestDeadlines(t *testing.T) {
	srv, peer := pair(t)
	go func() { _, _ = agitest.Channel{SilentAfterEnv: true}.Serve(peer) }()
	s := NewSession(srv)
	if err := s.ReadEnv(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err := s.GetVariable(ctx, "A")
	if err == nil {
		t.Fatal("no error from a command the peer never answered")
	}
	if _, _, err2 := s.GetVariable(context.Background(), "B"); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("after timeout: %v, want the sticky %v", err2, err)
	}

	t.Run("cancel", func(t *testing.T) {
		srv, peer := pair(t)
		go func() { _, _ = agitest.Channel{SilentAfterEnv: true}.Serve(peer) }()
		s := NewSession(srv)
		if err := s.ReadEnv(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, _, err := s.GetVariable(ctx, "A"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestBadNames(t *testing.T) {
	s := &Session{}
	for _, n := range []string{"", "A B", `A"`, "A\n"} {
		if err := s.SetVariable(context.Background(), n, "v"); err == nil {
			t.Errorf("SetVariable(%q) accepted", n)
		}
	}
}
