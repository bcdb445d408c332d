package agi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Protocol limits. They bound what a hostile or broken peer can make the
// server buffer, and what the server may send so that every Asterisk
// release reads each command as one line.
const (
	// MaxCommandLine is the longest command line the server sends,
	// newline included. res_agi.c reads commands with fgets into
	// buf[AGI_BUF_LEN] (2048 in every release read; some builds use 8192):
	// a longer line is cut and its tail executed as a second command, whose
	// reply would then answer our next command. 2047 fits every release.
	MaxCommandLine = 2047

	// maxReplyLine bounds one reply line. GET FULL VARIABLE replies carry a
	// whole SIP header (up to 4095 bytes in releases with the fixed
	// buffer, unbounded in newer ones), so this is generous.
	maxReplyLine = 64 << 10

	// maxEnvLine and maxEnvLines bound the environment block: about twenty
	// agi_* lines plus at most MAX_ARGS (128) agi_arg_N lines.
	maxEnvLine  = 8 << 10
	maxEnvLines = 256
)

// Errors of the FastAGI transport. They never reach the dialplan as STIR
// variables (a broken session cannot set variables); they end the session
// and are logged.
var (
	// ErrClosed means Asterisk closed the connection (channel gone, or
	// AGIEXITONHANGUP).
	ErrClosed = errors.New("agi: connection closed by asterisk")
	// ErrProtocol means the peer sent something that is not FastAGI.
	ErrProtocol = errors.New("agi: protocol error")
	// ErrCommandTooLong means a command would not fit Asterisk's command
	// buffer (MaxCommandLine).
	ErrCommandTooLong = errors.New("agi: command too long for asterisk's buffer")
	// ErrBadValue means a value holds a byte that cannot travel inside one
	// AGI command line (newline, carriage return or NUL).
	ErrBadValue = errors.New("agi: value has a line break or NUL")
)

// ReplyError is a reply whose code is not 200: 510 (unknown command), 511
// (not permitted on a dead channel) or 520 (usage). The session stays in
// step after it: the whole reply, every 520 usage line included, was read.
type ReplyError struct{ Reply Reply }

func (e *ReplyError) Error() string {
	return fmt.Sprintf("agi: %d %s", e.Reply.Code, e.Reply.Text)
}

// Reply is one answer of Asterisk to one command.
type Reply struct {
	Code int // 200, 510, 511 or 520

	// For 200: the result= token, the text inside the parentheses that
	// follow it (Value, with HasValue telling "result=1 ()" from no
	// parentheses at all) and anything else on the line (Extra, e.g.
	// "endpos=1234").
	Result   string
	Value    string
	HasValue bool
	Extra    string

	// Text is the rest of a non-200 status line; Usage the lines of a
	// multi-line 520 between its first and last line.
	Text  string
	Usage []string
}

// parseStatus reads the first line of a reply: three digits, then a space
// (final line) or a dash (first line of a multi-line 520).
func parseStatus(line string) (code int, multi bool, rest string, err error) {
	if len(line) < 3 {
		return 0, false, "", fmt.Errorf("%w: reply %q", ErrProtocol, line)
	}
	for i := 0; i < 3; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", fmt.Errorf("%w: reply %q", ErrProtocol, line)
		}
	}
	code, _ = strconv.Atoi(line[:3])
	// res_agi.c answers 200, 510, 511 and 520; anything outside 200-599 is
	// not a reply at all.
	if code < 200 || code > 599 {
		return 0, false, "", fmt.Errorf("%w: reply code %q", ErrProtocol, line[:3])
	}
	switch {
	case len(line) == 3:
		return code, false, "", nil
	case line[3] == ' ':
		return code, false, line[4:], nil
	case line[3] == '-':
		return code, true, line[4:], nil
	}
	return 0, false, "", fmt.Errorf("%w: reply %q", ErrProtocol, line)
}

// parse200 splits the text after "200 ": "result=1 (value)" as
// res_agi.c's handle_getvariable prints it, or "result=0 endpos=0".
func parse200(rest string, r *Reply) error {
	if !strings.HasPrefix(rest, "result=") {
		return fmt.Errorf("%w: 200 reply without result= %q", ErrProtocol, rest)
	}
	rest = rest[len("result="):]
	end := strings.IndexByte(rest, ' ')
	if end < 0 {
		r.Result = rest
		return nil
	}
	r.Result, rest = rest[:end], rest[end+1:]
	// The value is everything between "(" and the line's final ")":
	// a variable may itself contain parentheses, so the first ")" is not
	// the end.
	if strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")") {
		r.Value, r.HasValue = rest[1:len(rest)-1], true
		return nil
	}
	r.Extra = rest
	return nil
}

// Env is the environment block Asterisk sends when a session starts
// (res_agi.c launch_netscript and setup_env): agi_network, agi_request,
// agi_channel, agi_uniqueid, agi_callerid, agi_extension, agi_arg_N...
type Env map[string]string

// Script is agi_network_script without its query: "sign" for
// agi://host/sign?attest=B.
func (e Env) Script() string {
	s, _, _ := strings.Cut(e["agi_network_script"], "?")
	return strings.Trim(s, "/")
}

// Query is the query of agi_network_script, parsed.
func (e Env) Query() url.Values {
	_, q, ok := strings.Cut(e["agi_network_script"], "?")
	if !ok {
		return url.Values{}
	}
	v, err := url.ParseQuery(q)
	if err != nil {
		return url.Values{}
	}
	return v
}

// Args returns agi_arg_1, agi_arg_2... up to the first missing one.
func (e Env) Args() []string {
	var args []string
	for i := 1; ; i++ {
		v, ok := e["agi_arg_"+strconv.Itoa(i)]
		if !ok {
			return args
		}
		args = append(args, v)
	}
}

// Session is the server side of one FastAGI connection. It is not safe for
// concurrent use: FastAGI is strictly one command, one reply.
//
// Framing follows res_agi.c, not the common libraries' simplifications:
// one buffered reader for the whole session (never one per command, which
// drops bytes read ahead), an inline "HANGUP" line accepted before, after
// or in the same segment as any reply, and 520 usage blocks read to their
// last line. After any transport or framing error the session is broken
// for good, so that no later command can read an earlier command's reply.
type Session struct {
	Env Env

	conn   net.Conn
	r      *bufio.Reader
	hungUp bool
	broken error
}

// NewSession wraps conn. Call ReadEnv before any command.
func NewSession(conn net.Conn) *Session {
	return &Session{conn: conn, r: bufio.NewReaderSize(conn, 4096)}
}

// HungUp reports whether Asterisk announced the channel's hangup with an
// inline "HANGUP" line. Asterisk keeps executing commands that may run on a
// dead channel (GET/SET VARIABLE among them) and answers others with 511.
func (s *Session) HungUp() bool { return s.hungUp }

// aLongTimeAgo is a deadline in the past: it unblocks pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch applies ctx's deadline and cancellation to the connection for one
// exchange; the returned func undoes the cancellation hook.
func (s *Session) watch(ctx context.Context) func() bool {
	if d, ok := ctx.Deadline(); ok {
		_ = s.conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = s.conn.SetDeadline(aLongTimeAgo) })
}

func (s *Session) fail(err error) error {
	if s.broken == nil {
		s.broken = err
	}
	return s.broken
}

// readLine returns one line without its "\n" (and a stray "\r"), refusing
// lines longer than limit.
func (s *Session) readLine(ctx context.Context, limit int) (string, error) {
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > limit+1 {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, limit)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return "", ErrClosed
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("agi: %w", context.Cause(ctx))
		}
		return "", fmt.Errorf("agi: read: %w", err)
	}
	buf = bytes.TrimSuffix(buf[:len(buf)-1], []byte{'\r'})
	return string(buf), nil
}

// ReadEnv reads the environment block up to its empty line.
func (s *Session) ReadEnv(ctx context.Context) error {
	if s.broken != nil {
		return s.broken
	}
	defer s.watch(ctx)()
	env := Env{}
	for n := 0; ; n++ {
		if n == maxEnvLines {
			return s.fail(fmt.Errorf("%w: more than %d environment lines", ErrProtocol, maxEnvLines))
		}
		line, err := s.readLine(ctx, maxEnvLine)
		if err != nil {
			return s.fail(err)
		}
		if line == "" {
			s.Env = env
			return nil
		}
		// res_agi.c prints "%s: %s": the value is everything after the
		// first ": ", and may be empty ("agi_accountcode: ").
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			return s.fail(fmt.Errorf("%w: environment line %q", ErrProtocol, line))
		}
		env[k] = strings.TrimPrefix(v, " ")
	}
}

// Command sends one command line and reads its reply. A reply other than
// 200 is returned with a *ReplyError.
func (s *Session) Command(ctx context.Context, line string) (Reply, error) {
	if s.broken != nil {
		return Reply{}, s.broken
	}
	if strings.ContainsAny(line, "\r\n\x00") {
		return Reply{}, ErrBadValue
	}
	if len(line)+1 > MaxCommandLine {
		return Reply{}, fmt.Errorf("%w: %d bytes", ErrCommandTooLong, len(line)+1)
	}
	defer s.watch(ctx)()
	if _, err := io.WriteString(s.conn, line+"\n"); err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return Reply{}, s.fail(fmt.Errorf("agi: write: %w", err))
	}
	r, err := s.readReply(ctx)
	if err != nil {
		return Reply{}, s.fail(err)
	}
	if r.Code != 200 {
		return r, &ReplyError{Reply: r}
	}
	return r, nil
}

func (s *Session) readReply(ctx context.Context) (Reply, error) {
	var line string
	for {
		var err error
		if line, err = s.readLine(ctx, maxReplyLine); err != nil {
			return Reply{}, err
		}
		// run_agi sends "HANGUP\n" between replies when the channel hangs
		// up and AGISIGHUP is not "no". It is not a reply: note it and go
		// on reading, or the next command would get this command's reply.
		if line == "HANGUP" {
			s.hungUp = true
			continue
		}
		break
	}
	code, multi, rest, err := parseStatus(line)
	if err != nil {
		return Reply{}, err
	}
	r := Reply{Code: code}
	if !multi {
		if code == 200 {
			return r, parse200(rest, &r)
		}
		r.Text = rest
		return r, nil
	}
	// agi_handle_command: "520-Invalid command syntax.  Proper usage
	// follows:\n", the usage text as is, then "520 End of proper usage.\n".
	// The usage text need not end in a newline, so the last line may be
	// glued to it: accept the terminator as a suffix too.
	r.Text = rest
	const end = "520 End of proper usage."
	for n := 0; ; n++ {
		if n == maxEnvLines {
			return Reply{}, fmt.Errorf("%w: endless %d reply", ErrProtocol, code)
		}
		line, err := s.readLine(ctx, maxReplyLine)
		if err != nil {
			return Reply{}, err
		}
		if strings.HasPrefix(line, strconv.Itoa(code)+" ") {
			return r, nil
		}
		if head, ok := strings.CutSuffix(line, end); ok {
			if head != "" {
				r.Usage = append(r.Usage, head)
			}
			return r, nil
		}
		r.Usage = append(r.Usage, line)
	}
}

// GetVariable runs GET VARIABLE. set is false for "200 result=0" (the
// variable does not exist), true for "200 result=1 (value)" even when the
// value is empty. Asterisk reads into a 1024-byte buffer, so long values
// come back cut: use GetFullVariable for SIP headers.
func (s *Session) GetVariable(ctx context.Context, name string) (value string, set bool, err error) {
	if err := checkWord(name); err != nil {
		return "", false, err
	}
	r, err := s.Command(ctx, "GET VARIABLE "+name)
	if err != nil {
		return "", false, err
	}
	return r.Value, r.Result == "1", nil
}

// GetFullVariable runs GET FULL VARIABLE, which expands expr as the
// dialplan would (e.g. "${PJSIP_HEADER(read,Identity,1)}"). expr is sent
// as one quoted argument.
func (s *Session) GetFullVariable(ctx context.Context, expr string) (value string, set bool, err error) {
	q, err := Quote(expr)
	if err != nil {
		return "", false, err
	}
	r, err := s.Command(ctx, "GET FULL VARIABLE "+q)
	if err != nil {
		return "", false, err
	}
	return r.Value, r.Result == "1", nil
}

// SetVariable runs SET VARIABLE with the value quoted, so that spaces,
// quotes and backslashes arrive intact (Quote).
func (s *Session) SetVariable(ctx context.Context, name, value string) error {
	if err := checkWord(name); err != nil {
		return err
	}
	q, err := Quote(value)
	if err != nil {
		return err
	}
	_, err = s.Command(ctx, "SET VARIABLE "+name+" "+q)
	return err
}

// Verbose logs msg on the Asterisk console at level.
func (s *Session) Verbose(ctx context.Context, msg string, level int) error {
	q, err := Quote(msg)
	if err != nil {
		return err
	}
	_, err = s.Command(ctx, "VERBOSE "+q+" "+strconv.Itoa(level))
	return err
}

// checkWord refuses a variable name that argument splitting would change.
func checkWord(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\"\\\r\n\x00") {
		return fmt.Errorf("agi: variable name %q: not a single word", name)
	}
	return nil
}

// Quote makes s one AGI argument as res_agi.c's parse_args reads it: a
// double-quoted word in which '"' and '\' are backslash-escaped. Spaces and
// tabs inside quotes are kept; an empty string becomes "" (an empty
// argument, not a missing one). Line breaks and NUL cannot be sent: the
// command line ends at the first newline.
func Quote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", ErrBadValue
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String(), nil
}
