package agitest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// These tests pin the peer's bytes to res_agi.c, so that the server's
// tests, which trust the peer, rest on Asterisk's behaviour and not on the
// peer's.

func pipe(t *testing.T, ch Channel) (net.Conn, *bufio.Reader, <-chan *Transcript) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan *Transcript, 1)
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			done <- nil
			return
		}
		defer c.Close()
		tr, _ := ch.Serve(c)
		done <- tr
	}()
	srv, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	_ = srv.SetDeadline(time.Now().Add(5 * time.Second))
	return srv, bufio.NewReader(srv), done
}

func readEnv(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(line)
		if line == "\n" {
			return b.String()
		}
	}
}

// TestEnvironmentBytes: launch_netscript sends "agi_network: yes" and
// "agi_network_script: <script>", then setup_env sends agi_request first
// and the rest in its fixed order, agi_arg_N from 1, and an empty line.
func TestEnvironmentBytes(t *testing.T) {
	_, r, _ := pipe(t, Channel{Script: "verify?x=1", Host: "10.0.0.1:4573", Args: []string{"require=yes", ""},
		UniqueID: "1700000000.9", CallerID: "12155550121", Exten: "12155550131"})
	want := "agi_network: yes\n" +
		"agi_network_script: verify?x=1\n" +
		"agi_request: agi://10.0.0.1:4573/verify?x=1\n" +
		"agi_channel: PJSIP/trunk-00000001\n" +
		"agi_language: en\n" +
		"agi_type: PJSIP\n" +
		"agi_uniqueid: 1700000000.9\n" +
		"agi_version: 20.5.0\n" +
		"agi_callerid: 12155550121\n" +
		"agi_calleridname: unknown\n" +
		"agi_callingpres: 0\n" +
		"agi_callingani2: 0\n" +
		"agi_callington: 0\n" +
		"agi_callingtns: 0\n" +
		"agi_dnid: 12155550131\n" +
		"agi_rdnis: unknown\n" +
		"agi_context: from-trunk\n" +
		"agi_extension: 12155550131\n" +
		"agi_priority: 1\n" +
		"agi_enhanced: 0.0\n" +
		"agi_accountcode: \n" +
		"agi_threadid: 140000000000000\n" +
		"agi_arg_1: require=yes\n" +
		"agi_arg_2: \n" +
		"\n"
	if got := readEnv(t, r); got != want {
		t.Fatalf("environment:\n%s\nwant:\n%s", got, want)
	}
}

// TestReplies: the reply lines of handle_getvariable, agi_handle_command's
// 510/511/520 and handle_setvariable, byte for byte.
func TestReplies(t *testing.T) {
	conn, r, _ := pipe(t, Channel{Vars: map[string]string{"E": "", "V": "v (1)"}, HangupAt: 6, HangupHow: HangupAfterReply, NoSigHup: true})
	readEnv(t, r)
	steps := []struct{ cmd, want string }{
		{"GET VARIABLE V", "200 result=1 (v (1))\n"},
		{"GET VARIABLE E", "200 result=1 ()\n"},
		{"GET VARIABLE NOPE", "200 result=0\n"},
		{"FROB", "510 Invalid or unknown command\n"},
		{"get variable V", "200 result=1 (v (1))\n"}, // find_command is case-insensitive
		{"NOOP", "200 result=0\n"},                   // the channel hangs up here (AGISIGHUP=no)
		{"ANSWER", "511 Command Not Permitted on a dead channel or intercept routine\n"},
		{`SET VARIABLE X "a b"`, "200 result=1\n"},
		{"GET VARIABLE X", "200 result=1 (a b)\n"},
		{"SET VARIABLE Y a b", "200 result=1\n"},
		{"GET VARIABLE Y", "200 result=1 (a)\n"}, // argv[4] is ignored
		{"GET VARIABLE", "520-Invalid command syntax.  Proper usage follows:\n" + usage["GET VARIABLE"] + "520 End of proper usage.\n"},
		{"EXEC Foo", "511 Command Not Permitted on a dead channel or intercept routine\n"},
	}
	for _, s := range steps {
		if _, err := io.WriteString(conn, s.cmd+"\n"); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for got.Len() < len(s.want) {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v after %q", s.cmd, err, got.String())
			}
			got.WriteString(line)
		}
		if got.String() != s.want {
			t.Errorf("%s -> %q, want %q", s.cmd, got.String(), s.want)
		}
	}
}

// TestHangupTiming: run_agi writes "HANGUP\n" with its own ast_agi_send,
// before or after the pending reply; HangupSameSegment puts both in one
// write, which a single read then returns whole.
func TestHangupTiming(t *testing.T) {
	tests := []struct {
		mode HangupMode
		want []string // writes, in order
	}{
		{HangupBeforeReply, []string{"HANGUP\n", "200 result=1 (a)\n"}},
		{HangupAfterReply, []string{"200 result=1 (a)\n", "HANGUP\n"}},
		{HangupSameSegment, []string{"200 result=1 (a)\nHANGUP\n"}},
	}
	for _, tt := range tests {
		conn, r, _ := pipe(t, Channel{Vars: map[string]string{"A": "a"}, HangupAt: 1, HangupHow: tt.mode})
		readEnv(t, r)
		if r.Buffered() != 0 {
			t.Fatal("bytes after the environment")
		}
		if _, err := io.WriteString(conn, "GET VARIABLE A\n"); err != nil {
			t.Fatal(err)
		}
		// Two writes may still be read together by a slow reader, so the
		// order is checked on the joined bytes; one write is never split.
		want := strings.Join(tt.want, "")
		var got []byte
		for reads := 0; len(got) < len(want); reads++ {
			buf := make([]byte, 256)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("mode %d: %v after %q", tt.mode, err, got)
			}
			if reads == 0 && len(tt.want) == 1 && n != len(want) {
				t.Errorf("mode %d: first read %q, want the whole segment", tt.mode, buf[:n])
			}
			got = append(got, buf[:n]...)
		}
		if string(got) != want {
			t.Errorf("mode %d: read %q, want %q", tt.mode, got, want)
		}
	}
	t.Run("close", func(t *testing.T) {
		conn, r, done := pipe(t, Channel{HangupAt: 1, HangupHow: HangupClose})
		readEnv(t, r)
		if _, err := io.WriteString(conn, "GET VARIABLE A\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadString('\n'); err != io.EOF {
			t.Fatalf("read after hangup: %v, want EOF", err)
		}
		if tr := <-done; !tr.HungUp {
			t.Fatal("transcript: not hung up")
		}
	})
}

// TestBuffers: handle_getvariable's tempstr[1024], handle_getvariablefull's
// tmp[4096], and fgets(buf, AGI_BUF_LEN) splitting a long command.
func TestBuffers(t *testing.T) {
	long := strings.Repeat("x", 5000)
	conn, r, _ := pipe(t, Channel{Vars: map[string]string{"L": long}, Headers: map[string][]string{"Identity": {long}}, CommandBuf: 2048})
	readEnv(t, r)
	steps := []struct{ cmd, want string }{
		{"GET VARIABLE L", "200 result=1 (" + long[:1023] + ")\n"},
		{"GET FULL VARIABLE ${L}", "200 result=1 (" + long[:4095] + ")\n"},
		{"GET FULL VARIABLE ${PJSIP_HEADER(read,Identity,1)}", "200 result=1 (" + long[:4095] + ")\n"},
		{"GET FULL VARIABLE ${PJSIP_HEADER(read,Identity,2)}", "200 result=1 ()\n"},
		{"GET FULL VARIABLE a${CHANNEL(linkedid)}b", "200 result=1 (a1700000000.1b)\n"},
		{"VERBOSE " + strings.Repeat("v", 2100) + " 1", "200 result=1\n510 Invalid or unknown command\n"},
	}
	for _, s := range steps {
		if _, err := io.WriteString(conn, s.cmd+"\n"); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for got.Len() < len(s.want) {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%.40s: %v", s.cmd, err)
			}
			got.WriteString(line)
		}
		if got.String() != s.want {
			t.Errorf("%.40s -> %.60q (%d bytes), want %d bytes", s.cmd, got.String(), got.Len(), len(s.want))
		}
	}
}
