// Package agitest plays Asterisk's side of FastAGI, byte for byte as
// res/res_agi.c does, so that the FastAGI server is tested without an
// Asterisk (there is no Debian package of it).
//
// Each behaviour cites the res_agi.c function it copies: launch_netscript
// and setup_env (the environment block and its order), run_agi (command
// reading with fgets into AGI_BUF_LEN, the inline "HANGUP" line, dead-channel
// mode), agi_handle_command (510, 511, multi-line 520), parse_args (quoting
// and escaping), handle_getvariable (result=0 for unset, 1024-byte buffer)
// and handle_getvariablefull (the 4096-byte buffer of the releases that had
// one).
package agitest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Limits of res_agi.c that a peer reproduces.
const (
	// DefaultCommandBuf is AGI_BUF_LEN of the peer: commands are read with
	// fgets(buf, len) so a line longer than DefaultCommandBuf-1 bytes is cut
	// and its remainder read as the next command. Releases read use 2048;
	// Channel.CommandBuf selects it.
	DefaultCommandBuf = 8192
	// GetVariableBuf is handle_getvariable's tempstr[1024]: values come
	// back cut to 1023 bytes.
	GetVariableBuf = 1024
	// GetFullVariableBuf is handle_getvariablefull's tmp[4096], filled by
	// pbx_substitute_variables_helper(chan, expr, tmp, sizeof(tmp) - 1):
	// an expansion comes back cut to 4095 bytes.
	GetFullVariableBuf = 4096
)

// HangupMode says how a channel's hangup reaches the FastAGI server.
type HangupMode int

const (
	// HangupBeforeReply: run_agi notices the hangup first and sends
	// "HANGUP\n" (a write of its own), then executes the pending command in
	// dead mode and sends its reply.
	HangupBeforeReply HangupMode = iota + 1
	// HangupAfterReply: the reply, then "HANGUP\n" in a second write.
	HangupAfterReply
	// HangupSameSegment: reply and "HANGUP\n" arrive in one TCP segment.
	HangupSameSegment
	// HangupClose: the channel goes away with the command unanswered and
	// the connection is closed (AGIEXITONHANGUP, or the channel destroyed).
	HangupClose
)

// Channel is the Asterisk channel a peer plays: its environment, its
// variables and SIP headers, and the faults to inject.
type Channel struct {
	Script   string   // agi_network_script, e.g. "verify" or "sign?attest=B"
	Host     string   // host part of agi_request; default "127.0.0.1"
	Args     []string // AGI(url,arg1,arg2...) -> agi_arg_N
	Name     string   // agi_channel; default "PJSIP/trunk-00000001"
	UniqueID string   // agi_uniqueid; default "1700000000.1"
	LinkedID string   // CHANNEL(linkedid); default UniqueID
	CallerID string   // agi_callerid, CALLERID(num); empty prints "unknown"
	Exten    string   // agi_extension, EXTEN
	Context  string   // agi_context; default "from-trunk"

	// Vars are channel variables; a missing key is an unset variable.
	Vars map[string]string
	// Headers are the SIP request's headers for PJSIP_HEADER(read,Name,N).
	Headers map[string][]string

	// NoSigHup is AGISIGHUP=no: the hangup is never announced inline.
	NoSigHup bool
	// CommandBuf is AGI_BUF_LEN; 0 means DefaultCommandBuf.
	CommandBuf int
	// FullVariableUnbounded plays newer releases, whose GET FULL VARIABLE
	// expands into a growing string instead of tmp[4096].
	FullVariableUnbounded bool

	// Silent connects and never sends the environment block.
	Silent bool
	// SilentAfterEnv sends the environment, then never answers.
	SilentAfterEnv bool
	// HangupAt is the 1-based command during which the channel hangs up;
	// 0 never. HangupHow says how that shows.
	HangupAt  int
	HangupHow HangupMode
}

// Transcript is what a peer saw and did.
type Transcript struct {
	Commands []string          // command lines received, as read
	Set      map[string]string // variables set by SET VARIABLE, last value
	Vars     map[string]string // all channel variables at the end
	HungUp   bool              // the channel hung up during the session
	Closed   bool              // the server closed the connection (EOF)
}

// Run dials addr and plays the channel until the server closes the
// connection, the peer hangs up with HangupClose, or ctx ends.
func (c Channel) Run(ctx context.Context, addr string) (*Transcript, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	return c.Serve(conn)
}

// Serve plays the channel on an established connection.
func (c Channel) Serve(conn net.Conn) (*Transcript, error) {
	p := &peer{ch: c, conn: conn, t: &Transcript{Set: map[string]string{}, Vars: map[string]string{}}}
	for k, v := range c.Vars {
		p.t.Vars[k] = v
	}
	err := p.run()
	return p.t, err
}

type peer struct {
	ch   Channel
	conn net.Conn
	t    *Transcript
	dead bool
}

func (p *peer) send(s string) error {
	_, err := io.WriteString(p.conn, s)
	return err
}

// drain waits for the server to close the connection.
func (p *peer) drain() error {
	_, err := io.Copy(io.Discard, p.conn)
	p.t.Closed = err == nil
	return err
}

func (p *peer) run() error {
	if p.ch.Silent {
		return p.drain()
	}
	if err := p.send(p.env()); err != nil {
		return err
	}
	if p.ch.SilentAfterEnv {
		return p.drain()
	}
	bufLen := p.ch.CommandBuf
	if bufLen == 0 {
		bufLen = DefaultCommandBuf
	}
	r := bufio.NewReaderSize(p.conn, bufLen)
	for n := 1; ; n++ {
		line, err := fgets(r, bufLen)
		if err != nil {
			if errors.Is(err, io.EOF) {
				// run_agi: an empty read means the script ended.
				p.t.Closed = true
				return nil
			}
			return err
		}
		p.t.Commands = append(p.t.Commands, line)
		// run_agi strips one trailing newline, if any.
		cmd := strings.TrimSuffix(line, "\n")
		if n == p.ch.HangupAt {
			p.t.HungUp = true
			p.dead = true
			switch p.ch.HangupHow {
			case HangupClose:
				return nil
			case HangupBeforeReply:
				if !p.ch.NoSigHup {
					if err := p.send("HANGUP\n"); err != nil {
						return err
					}
					// A gap, so that the two writes are two segments.
					time.Sleep(2 * time.Millisecond)
				}
				if err := p.send(p.handle(cmd)); err != nil {
					return err
				}
				continue
			case HangupAfterReply:
				if err := p.send(p.handle(cmd)); err != nil {
					return err
				}
				if !p.ch.NoSigHup {
					time.Sleep(2 * time.Millisecond)
					if err := p.send("HANGUP\n"); err != nil {
						return err
					}
				}
				continue
			case HangupSameSegment:
				out := p.handle(cmd)
				if !p.ch.NoSigHup {
					out += "HANGUP\n"
				}
				if err := p.send(out); err != nil {
					return err
				}
				continue
			}
		}
		if err := p.send(p.handle(cmd)); err != nil {
			return err
		}
	}
}

// fgets reads as C's fgets(buf, size, f) does in run_agi: up to size-1
// bytes, stopping after a newline. A longer line comes back in pieces.
func fgets(r *bufio.Reader, size int) (string, error) {
	var b strings.Builder
	for b.Len() < size-1 {
		c, err := r.ReadByte()
		if err != nil {
			if b.Len() > 0 && errors.Is(err, io.EOF) {
				return b.String(), nil
			}
			return "", err
		}
		b.WriteByte(c)
		if c == '\n' {
			break
		}
	}
	return b.String(), nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// env is launch_netscript's two lines then setup_env's block, in order.
func (p *peer) env() string {
	c := p.ch
	var b strings.Builder
	host := or(c.Host, "127.0.0.1")
	b.WriteString("agi_network: yes\n")
	if c.Script != "" {
		fmt.Fprintf(&b, "agi_network_script: %s\n", c.Script)
	}
	fmt.Fprintf(&b, "agi_request: agi://%s/%s\n", host, c.Script)
	fmt.Fprintf(&b, "agi_channel: %s\n", or(c.Name, "PJSIP/trunk-00000001"))
	b.WriteString("agi_language: en\n")
	b.WriteString("agi_type: PJSIP\n")
	fmt.Fprintf(&b, "agi_uniqueid: %s\n", or(c.UniqueID, "1700000000.1"))
	b.WriteString("agi_version: 20.5.0\n")
	fmt.Fprintf(&b, "agi_callerid: %s\n", or(c.CallerID, "unknown"))
	b.WriteString("agi_calleridname: unknown\n")
	b.WriteString("agi_callingpres: 0\n")
	b.WriteString("agi_callingani2: 0\n")
	b.WriteString("agi_callington: 0\n")
	b.WriteString("agi_callingtns: 0\n")
	fmt.Fprintf(&b, "agi_dnid: %s\n", or(c.Exten, "unknown"))
	b.WriteString("agi_rdnis: unknown\n")
	fmt.Fprintf(&b, "agi_context: %s\n", or(c.Context, "from-trunk"))
	fmt.Fprintf(&b, "agi_extension: %s\n", or(c.Exten, "s"))
	b.WriteString("agi_priority: 1\n")
	b.WriteString("agi_enhanced: 0.0\n")
	b.WriteString("agi_accountcode: \n")
	b.WriteString("agi_threadid: 140000000000000\n")
	for i, a := range c.Args {
		fmt.Fprintf(&b, "agi_arg_%d: %s\n", i+1, a)
	}
	b.WriteString("\n")
	return b.String()
}

// Usage texts, multi-line as res_agi.c's documentation renders them.
var usage = map[string]string{
	"GET VARIABLE":      " Usage: GET VARIABLE <variablename>\n\tReturns 0 if <variablename> is not set.  Returns 1 if <variablename>\n\tis set and returns the variable in parentheses.\n\texample return code: 200 result=1 (testvariable)\n",
	"GET FULL VARIABLE": " Usage: GET FULL VARIABLE <variablename> [<channel name>]\n\tReturns 0 if <variablename> is not set or channel does not exist.\n\tReturns 1 if <variablename> is set and returns the variable in parenthesis.\n",
	"SET VARIABLE":      " Usage: SET VARIABLE <variablename> <value>\n",
	"VERBOSE":           " Usage: VERBOSE <message> <level>\n\tSends <message> to the console via verbose message system.\n",
}

// deadOK lists the commands registered with dead=1 (runnable after hangup).
var deadOK = map[string]bool{
	"GET VARIABLE": true, "GET FULL VARIABLE": true, "SET VARIABLE": true,
	"VERBOSE": true, "NOOP": true, "CHANNEL STATUS": true,
}

// handle is agi_handle_command: parse_args, find_command, the handler, and
// the 510/511/520 replies.
func (p *peer) handle(line string) string {
	argv := ParseArgs(line)
	name := findCommand(argv)
	switch {
	case name == "":
		return "510 Invalid or unknown command\n"
	case p.dead && !deadOK[name]:
		return "511 Command Not Permitted on a dead channel or intercept routine\n"
	}
	argc := len(argv)
	showUsage := func() string {
		u, ok := usage[name]
		if !ok {
			return "520 Invalid command syntax.  Proper usage not available.\n"
		}
		return "520-Invalid command syntax.  Proper usage follows:\n" + u + "520 End of proper usage.\n"
	}
	switch name {
	case "GET VARIABLE":
		if argc != 3 {
			return showUsage()
		}
		v, ok := p.getVariable(argv[2])
		if !ok {
			return "200 result=0\n"
		}
		return "200 result=1 (" + cut(v, GetVariableBuf-1) + ")\n"
	case "GET FULL VARIABLE":
		if argc != 4 && argc != 5 {
			return showUsage()
		}
		v := p.substitute(argv[3])
		if !p.ch.FullVariableUnbounded {
			v = cut(v, GetFullVariableBuf-1)
		}
		return "200 result=1 (" + v + ")\n"
	case "SET VARIABLE":
		// handle_setvariable sets argv[3] if present and ignores any
		// further argument: an unquoted "a b" sets "a".
		if argc >= 4 {
			p.t.Set[argv[2]] = argv[3]
			p.t.Vars[argv[2]] = argv[3]
		}
		return "200 result=1\n"
	case "VERBOSE":
		if argc < 2 {
			return showUsage()
		}
		return "200 result=1\n"
	case "NOOP":
		return "200 result=0\n"
	case "ANSWER":
		return "200 result=0\n"
	case "CHANNEL STATUS":
		if p.dead {
			return "200 result=0\n"
		}
		return "200 result=6\n"
	}
	return "510 Invalid or unknown command\n"
}

// commands known to the peer, as words.
var commands = [][]string{
	{"GET", "FULL", "VARIABLE"}, {"GET", "VARIABLE"}, {"SET", "VARIABLE"},
	{"VERBOSE"}, {"NOOP"}, {"ANSWER"}, {"CHANNEL", "STATUS"},
	{"STREAM", "FILE"}, {"EXEC"},
}

// findCommand matches leading words case-insensitively, as find_command.
func findCommand(argv []string) string {
	for _, c := range commands {
		if len(argv) < len(c) {
			continue
		}
		ok := true
		for i, w := range c {
			if !strings.EqualFold(argv[i], w) {
				ok = false
				break
			}
		}
		if ok {
			return strings.Join(c, " ")
		}
	}
	return ""
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// getVariable is pbx_retrieve_variable, or ast_func_read for a name that
// ends in ")".
func (p *peer) getVariable(name string) (string, bool) {
	if strings.HasSuffix(name, ")") {
		return p.function(name)
	}
	v, ok := p.t.Vars[name]
	return v, ok
}

// function evaluates the few dialplan functions the scripts read.
func (p *peer) function(expr string) (string, bool) {
	fn, args, ok := strings.Cut(strings.TrimSuffix(expr, ")"), "(")
	if !ok {
		return "", false
	}
	a := strings.Split(args, ",")
	switch strings.ToUpper(fn) {
	case "CHANNEL":
		if len(a) == 1 && a[0] == "linkedid" {
			return or(p.ch.LinkedID, or(p.ch.UniqueID, "1700000000.1")), true
		}
		if len(a) == 1 && a[0] == "uniqueid" {
			return or(p.ch.UniqueID, "1700000000.1"), true
		}
	case "CALLERID":
		if len(a) == 1 && a[0] == "num" {
			return p.ch.CallerID, true
		}
	case "PJSIP_HEADER":
		if len(a) < 2 || a[0] != "read" {
			return "", false
		}
		n := 1
		if len(a) > 2 {
			var err error
			if n, err = strconv.Atoi(a[2]); err != nil || n < 1 {
				return "", false
			}
		}
		for k, vs := range p.ch.Headers {
			if strings.EqualFold(k, a[1]) && n <= len(vs) {
				return vs[n-1], true
			}
		}
		return "", true
	}
	return "", false
}

// substitute is pbx_substitute_variables_helper for ${NAME} and
// ${FUNC(args)} (no nesting); anything unknown expands to nothing.
func (p *peer) substitute(expr string) string {
	var b strings.Builder
	for {
		i := strings.Index(expr, "${")
		if i < 0 {
			b.WriteString(expr)
			return b.String()
		}
		j := strings.IndexByte(expr[i:], '}')
		if j < 0 {
			b.WriteString(expr)
			return b.String()
		}
		b.WriteString(expr[:i])
		v, _ := p.getVariable(expr[i+2 : i+j])
		b.WriteString(v)
		expr = expr[i+j+1:]
	}
}

// ParseArgs splits a command line exactly as res_agi.c's parse_args: a '"'
// toggles quoting (and, coming off whitespace, starts a word), a '\' makes
// the next byte literal, unquoted unescaped spaces and tabs separate words.
// Quote characters are dropped.
func ParseArgs(s string) []string {
	var (
		argv       []string
		cur        []byte
		inWord     bool
		quoted     bool
		escaped    bool
		whitespace = true
	)
	flush := func() {
		if inWord {
			argv = append(argv, string(cur))
		}
		cur, inWord = cur[:0], false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' && !escaped:
			quoted = !quoted
			if quoted && whitespace {
				flush()
				inWord = true
				whitespace = false
			}
			escaped = false
			continue
		case (c == ' ' || c == '\t') && !quoted && !escaped:
			whitespace = true
			flush()
			continue
		case c == '\\' && !escaped:
			escaped = true
			continue
		}
		if whitespace {
			flush()
			inWord = true
			whitespace = false
		}
		cur = append(cur, c)
		escaped = false
	}
	flush()
	return argv
}
